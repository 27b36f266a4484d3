import { nyalaError } from '../errors.js'
import { type CodeOwner, callAs } from './code-owner.js'
import { timedOut, withTimeout } from './with-timeout.js'

/**
 * Timers, stop callbacks and the abort signal of one generation. The host
 * releases all of them at stop: one forgotten timer would keep the whole old
 * generation (its code, its Fastify instance) in memory.
 */
export class TrackedResources {
  readonly #controller = new AbortController()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #onStop: (() => unknown)[] = []
  readonly #owner: CodeOwner

  constructor(owner: CodeOwner) {
    this.#owner = owner
  }

  get signal(): AbortSignal {
    return this.#controller.signal
  }

  get closed(): boolean {
    return this.#controller.signal.aborted
  }

  #refuseWhenClosed(what: string): void {
    if (this.closed) {
      throw nyalaError('NYALA_ERR_GENERATION_STOPPED', {
        module: this.#owner.module,
        generation: this.#owner.generation,
        what,
      })
    }
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number | undefined, args: unknown[]): NodeJS.Timeout {
    this.#refuseWhenClosed('setTimeout')
    // what the callback throws is this generation's crash, even when another module's code
    // (using a service this one provides) set the timer
    const handle = setTimeout(() => {
      this.#timers.delete(handle)
      callAs(this.#owner, fn, args)
    }, ms)
    this.#timers.add(handle)
    return handle
  }

  setInterval(fn: (...args: unknown[]) => void, ms: number | undefined, args: unknown[]): NodeJS.Timeout {
    this.#refuseWhenClosed('setInterval')
    const handle = setInterval(() => callAs(this.#owner, fn, args), ms)
    this.#timers.add(handle)
    return handle
  }

  clear(handle: NodeJS.Timeout | undefined): void {
    if (!handle) return
    clearTimeout(handle)
    this.#timers.delete(handle)
  }

  onStop(fn: () => unknown): void {
    this.#refuseWhenClosed('onStop')
    this.#onStop.push(fn)
  }

  /**
   * Aborts the signal, runs the stop callbacks (last first), each for at most
   * `timeoutMs`, and clears every timer. Returns the errors the callbacks threw
   * (or the time they ran out of), to be logged.
   */
  async close(timeoutMs = Number.POSITIVE_INFINITY): Promise<unknown[]> {
    if (this.closed) return []
    this.#controller.abort()
    const errors: unknown[] = []
    for (const fn of this.#onStop.splice(0).reverse()) {
      try {
        // a callback that never settles would keep the generation stopping for ever: its timers
        // firing, its memory held, and the reload or crash restart that stops it never ending
        const settled = Number.isFinite(timeoutMs)
          ? await withTimeout(Promise.resolve().then(fn), timeoutMs)
          : await fn()
        if (settled === timedOut)
          errors.push(new Error(`an onStop callback did not settle within ${timeoutMs} ms`))
      } catch (err) {
        errors.push(err)
      }
    }
    for (const handle of this.#timers) clearTimeout(handle)
    this.#timers.clear()
    return errors
  }
}
