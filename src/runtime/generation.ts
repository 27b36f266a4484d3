import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Bundle } from '../bundle/open-bundle.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { FileCache, FileLease } from '../loader/file-cache.js'
import { holdFunctions } from '../loader/held-functions.js'
import {
  evaluationPlan,
  loadModuleCode,
  loadModuleCodeInSlices,
  type ModuleCode,
  precompile,
  transformBundleAhead,
} from '../loader/load-module.js'
import { type ModuleEntry, moduleEntryOf } from '../loader/module-entry.js'
import { type CodeOwner, liveOwners, ownerStopped } from './code-owner.js'
import { type ContextHandle, type ContextInit, createContext } from './context.js'
import { createModuleApp } from './module-app.js'
import type { RequestStats } from './request-stats.js'
import { markRoutes } from './route-marks.js'
import { codeId, forgetCode, part, runAs } from './running-code.js'
import { UpgradedSockets } from './upgraded-sockets.js'
import { timedOut, withTimeout } from './with-timeout.js'

/** Fastify's name for a plugin (`fastify.display-name`), shown in `printPlugins` and its errors. */
const pluginDisplayName = Symbol.for('fastify.display-name')

export type GenerationState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed'

export interface GenerationInit extends ContextInit {
  readonly startTimeoutMs: number
  readonly stopTimeoutMs: number
  readonly logRequests: boolean
  /**
   * What the previous generation's code loaded (a reload): its files are
   * compiled ahead and its packages run ahead, in slices, before the main file.
   */
  readonly previousCode?: Pick<ModuleCode, 'loaded' | 'requires'> | undefined
  /** The module's request figures (kept across its generations): each finished request is recorded. */
  readonly stats?: RequestStats | undefined
  /**
   * Where the bundle's files are put on disk before its code runs, so
   * `__dirname` names a real directory; without it they stay in memory only.
   */
  readonly files?: FileCache | undefined
  /**
   * Makes code caches, off this thread, of the scripts the code compiled from
   * their source, so the next load of the same files compiles them from the
   * cache (src/loader/code-cache.ts); without it none are made.
   */
  readonly makeCodeCaches?: ((bundle: Bundle, entries: readonly string[]) => void) | undefined
}

/**
 * One generation of one module: its code, its own Fastify instance under the
 * module's prefix, its context and what it tracks. A reload builds a new
 * generation beside the old one; nothing is shared between them.
 */
export class Generation {
  readonly name: string
  readonly number: number
  readonly bundle: Bundle
  readonly log: Logger
  /** Its id in the running-code slots: the dispatcher marks its requests with it, for the watchdog. */
  readonly codeId: number
  /** What module code of this generation runs under (crash attribution). */
  readonly owner: CodeOwner
  state: GenerationState = 'created'
  /** The Fastify instance requests are routed into; set once started. */
  app: FastifyInstance | undefined
  startedAt = 0
  startMs = 0
  /** Requests dispatched to this generation that have not finished, and its open upgraded connections. */
  inflight = 0
  /** Requests dispatched to this generation so far (metrics). */
  served = 0
  /** What its code loaded and required: what the next generation prepares ahead. */
  code: Pick<ModuleCode, 'loaded' | 'requires'> = { loaded: [], requires: new Map() }

  readonly #init: GenerationInit
  readonly #stats: RequestStats | undefined
  #handle: ContextHandle | undefined
  #entry: ModuleEntry | undefined
  #idle: (() => void)[] = []
  /** Waiters for no HTTP request in flight, whatever upgraded connections are open. */
  #requestsIdle: (() => void)[] = []
  readonly #upgraded = new UpgradedSockets()
  #files: FileLease | undefined
  /** Lets go of the compiled wrappers this generation holds for the next one (held-functions.ts). */
  #releaseFunctions: () => void = () => {}

  constructor(init: GenerationInit) {
    this.#init = init
    this.#stats = init.stats
    this.bundle = init.bundle
    this.name = init.bundle.name
    this.number = init.generation
    this.log = init.log
    this.codeId = codeId(this.name, this.number)
    this.owner = Object.freeze({
      module: this.name,
      generation: this.number,
      file: init.bundle.file,
      dir: init.files?.dirOf(init.bundle),
      code: this.codeId,
    })
  }

  /** What this generation provided to its dependents through `ctx.provide`. */
  get provided(): unknown {
    return this.#handle?.provided()
  }

  /**
   * Counts one request in; the returned function counts it out. Bound once so
   * the request path allocates nothing but the listener registration.
   */
  readonly release = (res?: {
    readonly startedAt: number
    readonly statusCode: number
    readonly writableEnded: boolean
  }): void => {
    this.inflight--
    if (res !== undefined && this.#stats !== undefined) {
      const now = performance.now()
      // a response closed before it ended counts as aborted (0), whatever status it had set
      this.#stats.record(now - res.startedAt, now, res.writableEnded ? res.statusCode : 0)
    }
    if (this.#requestsIdle.length > 0 && this.inflight === this.#upgraded.size)
      for (const fn of this.#requestsIdle.splice(0)) fn()
    if (this.inflight === 0 && this.#idle.length > 0) for (const fn of this.#idle.splice(0)) fn()
  }

  /** Connections upgraded into this generation (WebSockets) that are still open. */
  get upgraded(): number {
    return this.#upgraded.size
  }

  /**
   * Hands an HTTP upgrade (a WebSocket) to this generation's Fastify instance
   * as an `upgrade` event of its server, which is where @fastify/websocket and
   * `ws` listen (the server itself never listens: the host's does). The
   * connection counts in flight until it closes, so a reload's drain waits
   * for it and `stop` ends it. False when nothing of the module listens for
   * upgrades.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const server = this.app?.server
    if (!server || server.listenerCount('upgrade') === 0) return false
    this.inflight++
    this.served++
    this.#upgraded.add(socket, req.headers.upgrade?.toLowerCase() === 'websocket', this.release)
    try {
      server.emit('upgrade', req, socket, head)
    } catch (err) {
      // a listener that throws at once: the connection is the module's loss, not the host's
      this.log.error({ err, url: req.url }, `upgrade listener threw: ${reasonOf(err)}`)
      socket.destroy()
    }
    return true
  }

  /** Ends the open upgraded connections now (UpgradedSockets.endAll); `stop` does it too. */
  endUpgraded(): void {
    this.#upgraded.endAll()
  }

  /**
   * Resolves when no request is in flight, or after `ms`; true when idle.
   * Open upgraded connections count as in flight unless `requestsOnly`.
   */
  async waitIdle(ms: number, requestsOnly = false): Promise<boolean> {
    if (this.inflight === (requestsOnly ? this.#upgraded.size : 0)) return true
    const waiters = requestsOnly ? this.#requestsIdle : this.#idle
    const idle = new Promise<true>((resolve) => waiters.push(() => resolve(true)))
    return (await withTimeout(idle, ms)) === true
  }

  /**
   * Loads the code and runs `register` inside a fresh Fastify instance. On
   * failure the generation is `failed`, everything it made is released, and
   * the error (with its own code) is thrown.
   */
  async start(): Promise<void> {
    // a crash of its code while it starts (a stray rejection in register, a timer it set) is this
    // generation's, not the host's: attributed to it from its first line of code on, and to a
    // stopped generation when the start fails (a timer it left may still fire)
    liveOwners.add(this.owner)
    try {
      await this.#start()
    } catch (err) {
      ownerStopped(this.owner)
      throw err
    }
  }

  async #start(): Promise<void> {
    const t0 = performance.now()
    this.state = 'starting'
    const { bundle } = this
    const init = this.#init
    // the bundle's files go to disk (a new content only) while its code compiles, which does not
    // need them; they are there before any of its code runs, as its top level may read them
    // A cache that cannot be written (a read-only file system) is a warning, as an unwritable
    // pidfile is: the module runs from memory as before, and only code reading files beside
    // itself or loading an addon fails, with the reason already logged.
    let uncached: readonly string[] = []
    const placing = init.files?.acquire(bundle).catch((err: NyalaError) => {
      this.log.warn({ ...err.toJSON(), module: this.name }, err.message)
      return undefined
    })
    try {
      // an isolated module's files stay with the reader (src/isolate/ starts it in its own thread)
      if (bundle.contentsOmitted) throw new Error(`the bundle ${bundle.file} was read for a module thread`)
      // the transaction's planning and this generation's set-up ran in this block so far: let the
      // requests that arrived meanwhile through before the code is compiled and run
      await yieldToLoop()
      // compiling and running the packages are sliced; the module's own code is one block
      const prev = init.previousCode
      let code: ModuleCode
      if (prev) {
        const compiled = await precompile(bundle, prev.loaded)
        this.#files = await placing
        code = await loadModuleCodeInSlices(
          bundle,
          compiled,
          evaluationPlan(bundle.manifest.main, prev.requires),
        )
      } else {
        // its own ES modules and TypeScript are transformed ahead, in esbuild's process
        await transformBundleAhead(bundle)
        this.#files = await placing
        code = runAs(this.codeId, part.load, () => loadModuleCode(bundle))
      }
      this.code = { loaded: code.loaded, requires: code.requires }
      // the next reload of the same files calls these wrappers again, compiled code and all
      this.#releaseFunctions = holdFunctions(code.functions)
      this.#entry = moduleEntryOf(code.exports, bundle.file, bundle.manifest.main)
      uncached = code.uncached
    } catch (err) {
      this.state = 'failed'
      if (!this.#files) void placing?.then((lease) => lease?.release())
      this.#releaseFiles()
      forgetCode(this.codeId)
      throw err
    }
    // let requests waiting behind the load through before the Fastify instance is built
    await yieldToLoop()
    this.#handle = createContext(init, this.owner)
    const app = createModuleApp(this.log, init.logRequests)
    markRoutes(app, this.codeId)
    // building a Fastify instance is about a millisecond of the serving thread: let the requests
    // that arrived meanwhile through before register and ready take their turn
    await yieldToLoop()
    const entry = this.#entry
    const ctx = this.#handle.ctx
    const prefix = bundle.manifest.prefix === '/' ? '' : bundle.manifest.prefix
    // Fastify runs the whole plugin tree of ready() in microtasks, one block of the serving
    // thread: avvio's start and the child instance, the module's register and its routes, then
    // the 404 router (a handler per HTTP method). A turn of the event loop before and after
    // register cuts it into three, each well under a millisecond for a small module, so requests
    // to every module (this one's old generation included) are served between them.
    const plugin = async (scoped: FastifyInstance) => {
      await yieldToLoop()
      await runAs(this.codeId, part.register, () => entry.register(scoped, ctx))
      await yieldToLoop()
    }
    // a plugin without a name makes Fastify look for it among the exports of every file in
    // require.cache, twice per register (about 0.3 ms of the serving thread per reload)
    Object.defineProperty(plugin, pluginDisplayName, { value: `module ${this.name}` })
    app.register(plugin, { prefix })
    const result = await withTimeout(
      Promise.resolve(app.ready()).then(
        () => undefined,
        (err: unknown) => err ?? new Error('register failed'),
      ),
      init.startTimeoutMs,
    )
    if (result !== undefined) {
      const error: NyalaError =
        result === timedOut
          ? nyalaError('NYALA_ERR_MODULE_START_TIMEOUT', { module: this.name, timeout: init.startTimeoutMs })
          : nyalaError(
              'NYALA_ERR_MODULE_REGISTER_FAILED',
              { module: this.name, reason: describe(result) },
              result,
            )
      this.state = 'failed'
      await this.#release(app, result === timedOut)
      forgetCode(this.codeId)
      throw error
    }
    this.app = app
    this.state = 'running'
    this.startedAt = Date.now()
    this.startMs = performance.now() - t0
    // code caches of what compiled from source, made on another thread, for the next load of the same files
    if (uncached.length > 0) init.makeCodeCaches?.(bundle, uncached)
  }

  /**
   * Runs the module's `stop` (bounded by module.stop.timeout), then aborts the
   * signal, runs `onStop` callbacks, clears timers and closes the Fastify
   * instance. Returns what `stop` returned, for the next generation's
   * `ctx.previous`. Callers drain in-flight requests first.
   */
  async stop(): Promise<unknown> {
    if (this.state !== 'running') return undefined
    this.state = 'stopping'
    const value = await this.#callModule('stop', this.#entry?.stop)
    // after the module's own stop, which may close its WebSockets its own way
    this.endUpgraded()
    await this.#release(this.app, false)
    ownerStopped(this.owner)
    forgetCode(this.codeId)
    this.state = 'stopped'
    return value
  }

  /**
   * What this (old, still serving) generation hands to the next one as
   * `ctx.previous`: the value of the module's `handoff(ctx)`, bounded by
   * module.stop.timeout. `stop` cannot be the source during a reload: the old
   * generation keeps serving until the new one has started, so it stops last.
   */
  async handoff(): Promise<unknown> {
    if (this.state !== 'running') return undefined
    return this.#callModule('handoff', this.#entry?.handoff)
  }

  /** Runs a module's `stop` or `handoff`, bounded by module.stop.timeout; a failure is logged, not thrown. */
  async #callModule(what: string, fn: ((ctx: unknown) => unknown) | undefined): Promise<unknown> {
    if (!fn || !this.#handle) return undefined
    const ctx = this.#handle.ctx
    const marked = what === 'stop' ? part.stop : part.handoff
    const outcome = await withTimeout(
      Promise.resolve()
        .then(() => runAs(this.codeId, marked, () => fn(ctx)))
        .then(
          (value) => ({ value }),
          (err: unknown) => ({ err }),
        ),
      this.#init.stopTimeoutMs,
    )
    if (outcome === timedOut) {
      this.#logStopError(`${what} did not finish within module.stop.timeout (${this.#init.stopTimeoutMs} ms)`)
      return undefined
    }
    if ('err' in outcome) {
      this.#logStopError(what === 'stop' ? reasonOf(outcome.err) : `${what} threw: ${reasonOf(outcome.err)}`)
      return undefined
    }
    return outcome.value
  }

  #logStopError(reason: string): void {
    const err = nyalaError('NYALA_ERR_MODULE_STOP_FAILED', { module: this.name, reason })
    this.log.error({ ...err.toJSON(), bundle: this.bundle.file }, err.message)
  }

  async #release(app: FastifyInstance | undefined, hung: boolean): Promise<void> {
    const errors = (await this.#handle?.resources.close(this.#init.stopTimeoutMs)) ?? []
    for (const err of errors) this.#logStopError(`onStop callback threw: ${reasonOf(err)}`)
    if (app) {
      // a register that never settled would keep close() waiting forever
      const closing = app.close().catch((err: unknown) => this.#logStopError(reasonOf(err)))
      if (!hung) await withTimeout(closing, this.#init.stopTimeoutMs)
    }
    this.app = undefined
    this.#entry = undefined
    this.#releaseFiles()
    this.#releaseFunctions()
  }

  /** The generation no longer needs its cache directory (removed once no generation does). */
  #releaseFiles(): void {
    this.#files?.release()
    this.#files = undefined
  }
}

function describe(err: unknown): string {
  if (isNyalaError(err)) return `${err.code}: ${err.message}`
  return reasonOf(err)
}
