import { part, runAs } from './running-code.js'

/**
 * The module generation whose code runs. Small and separate from the
 * Generation on purpose: what refers to it (a tagged error) must not keep a
 * stopped generation in memory.
 */
export interface CodeOwner {
  readonly module: string
  readonly generation: number
  /** The bundle file; module code is compiled with names `<file>/<entry>`. */
  readonly file: string
  /**
   * The directory of its files in the cache (src/loader/file-cache.ts), if it has one: a bundle
   * holding a native addon is compiled under the names of its files there (`sourceURL` showing
   * `<file>/<entry>`), which a replaced `Error.prepareStackTrace` (source-map-support) shows.
   */
  readonly dir?: string | undefined
  /** Its id in the running-code slots (src/runtime/running-code.ts), for the watchdog. */
  readonly code?: number
}

/**
 * Generations started and not stopped yet, the running ones and those
 * draining after a reload: a crash found by its stack can only be theirs.
 */
export const liveOwners = new Set<CodeOwner>()

/**
 * The last generations that stopped, oldest first: a plain `setTimeout` of a
 * stopped (or removed) module can still fire, and its crash is then theirs,
 * not the host's.
 */
export const stoppedOwners = new Set<CodeOwner>()
const stoppedKept = 256

/** Moves a generation from live to stopped, forgetting the oldest stopped ones. */
export function ownerStopped(owner: CodeOwner): void {
  liveOwners.delete(owner)
  stoppedOwners.add(owner)
  for (const old of stoppedOwners) {
    if (stoppedOwners.size <= stoppedKept) break
    stoppedOwners.delete(old)
  }
}

const thrownBy = new WeakMap<object, CodeOwner>()

/**
 * Calls module code the host schedules itself (`ctx` timers); what it throws
 * is tagged with its generation before it goes on to the process's
 * `uncaughtException` handler, which finds the owner with `ownerOfThrown`.
 * No AsyncLocalStorage: on Node 20 it enables async hooks for the whole
 * process, +20 % instructions per request (README, "When a module crashes").
 */
export function callAs(owner: CodeOwner, fn: (...args: unknown[]) => void, args: unknown[]): void {
  try {
    runAs(owner.code ?? 0, part.timer, () => fn(...args))
  } catch (err) {
    if (typeof err === 'object' && err !== null) {
      thrownBy.set(err, owner)
      throw err
    }
    // a thrown string or number cannot be tagged: an Error saying what was thrown can
    const wrapped = new Error(`a ctx timer of module "${owner.module}" threw ${String(err)}`, { cause: err })
    thrownBy.set(wrapped, owner)
    throw wrapped
  }
}

/** The generation whose host-scheduled code threw `err`, if `callAs` saw it. */
export function ownerOfThrown(err: unknown): CodeOwner | undefined {
  return typeof err === 'object' && err !== null ? thrownBy.get(err) : undefined
}

/**
 * Tags `err` as thrown by `owner`'s code, as `callAs` does: a crash reported
 * by a module's own thread (src/isolate/) is known to be its module's.
 */
export function tagThrown(err: object, owner: CodeOwner): void {
  thrownBy.set(err, owner)
}
