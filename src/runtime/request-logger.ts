import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString, Logger } from 'pino'

type Fn = (...args: unknown[]) => unknown

/** Without Object.keys: no array just to learn that an options object is empty. */
function isEmpty(object: object): boolean {
  for (const _ in object) return false
  return true
}

/**
 * `req.log` and `reply.log` of a module's request: the module's logger with
 * the request id bound (made when `req.log` is first read, request-log.ts),
 * whose pino child is made only when the request logs something.
 *
 * A pino child costs ~3k instructions under callgrind, 5 % of a whole bare
 * Fastify request (bench/dispatch-gap.md), and most requests never log. This
 * object costs one allocation; the child is made on the first call that would
 * write (a level the module's logger has off, without a route log level,
 * makes none).
 *
 * The usual logger API is here; anything else (`levels`, `on`, `version`,
 * ...) reaches the real child through the fallback at the end of the
 * prototype chain, so the object works wherever a pino logger does.
 */
export class RequestLogger {
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions | undefined
  #child: Logger | undefined

  constructor(parent: Logger, bindings: Bindings, options?: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    // {} (as Fastify's child-logger factories get) means none
    this.#options = options === undefined || isEmpty(options) ? undefined : options
    this.#child = undefined
  }

  /** The pino child, made now if it was not yet. */
  get real(): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  /** The child to write `level` through, or undefined when nothing would be written. */
  #writer(level: Level): Logger | undefined {
    if (this.#child) return this.#child
    // without options the child has the parent's level: ask the parent, make no child
    if (this.#options === undefined && !this.#parent.isLevelEnabled(level)) return undefined
    return this.real
  }

  fatal(...args: unknown[]): void {
    const to = this.#writer('fatal')
    if (to) Reflect.apply(to.fatal, to, args)
  }
  error(...args: unknown[]): void {
    const to = this.#writer('error')
    if (to) Reflect.apply(to.error, to, args)
  }
  warn(...args: unknown[]): void {
    const to = this.#writer('warn')
    if (to) Reflect.apply(to.warn, to, args)
  }
  info(...args: unknown[]): void {
    const to = this.#writer('info')
    if (to) Reflect.apply(to.info, to, args)
  }
  debug(...args: unknown[]): void {
    const to = this.#writer('debug')
    if (to) Reflect.apply(to.debug, to, args)
  }
  trace(...args: unknown[]): void {
    const to = this.#writer('trace')
    if (to) Reflect.apply(to.trace, to, args)
  }
  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.real.child(bindings, options)
  }

  get level(): string {
    return this.#child?.level ?? this.#options?.level ?? this.#parent.level
  }
  set level(level: LevelWithSilentOrString) {
    this.real.level = level
  }

  isLevelEnabled(level: LevelWithSilentOrString): boolean {
    return this.#child || this.#options ? this.real.isLevelEnabled(level) : this.#parent.isLevelEnabled(level)
  }

  bindings(): Bindings {
    return this.real.bindings()
  }

  flush(cb?: (err?: Error) => void): void {
    this.real.flush(cb)
  }
}

// the rest of pino's API, by way of the real child: reached only for what RequestLogger lacks
Object.setPrototypeOf(
  RequestLogger.prototype,
  new Proxy(Object.create(null) as object, {
    get(_target, key, receiver: unknown) {
      if (!(receiver instanceof RequestLogger)) return undefined
      const real = receiver.real as unknown as Record<string | symbol, unknown>
      const value = real[key]
      return typeof value === 'function' ? (value as Fn).bind(real) : value
    },
    set(_target, key, value, receiver: unknown) {
      if (!(receiver instanceof RequestLogger)) return false
      ;(receiver.real as unknown as Record<string | symbol, unknown>)[key] = value
      return true
    },
  }),
)
