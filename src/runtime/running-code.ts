/**
 * What code the main thread runs, in memory another thread can read while the
 * main thread is stuck: the watchdog's worker (src/supervise/watchdog.ts)
 * names the module and route of a stalled event loop from it.
 *
 * The request path writes a few integers into an Int32Array over a
 * SharedArrayBuffer (a handful of instructions, no allocation); names stay
 * here and go to the reader as they change, so the hot path never writes a
 * string. Slot values are plain stores: the reader only looks while the
 * writer is stuck, when nothing moves.
 */

/** Indexes into `runningSlots`. */
export const slot = Object.freeze({
  /** Milliseconds since `runningOrigin` when the loop last turned (the watchdog's heartbeat). */
  beat: 0,
  /** The code id of the generation whose code runs now, entered through the host; 0: none. */
  code: 1,
  /** The route (id > 0) or what of the module runs (`part`, < 0) in `code`; 0: none. */
  route: 2,
  /** The code id of the generation that was given the last request. */
  lastCode: 3,
  /** The route of the last request handler entered; 0 when the last request has not reached one. */
  lastRoute: 4,
})

/** What of a module runs, when it is not a route handler (negative route values). */
export const part = Object.freeze({ timer: -1, register: -2, stop: -3, handoff: -4, load: -5 })

export const partNames: Readonly<Record<number, string>> = Object.freeze({
  [part.timer]: 'a ctx timer',
  [part.register]: 'register',
  [part.stop]: 'stop',
  [part.handoff]: 'handoff',
  [part.load]: 'loading its code',
})

export const runningBuffer = new SharedArrayBuffer(8 * Int32Array.BYTES_PER_ELEMENT)
export const runningSlots = new Int32Array(runningBuffer)
/** `Date.now()` at which `slot.beat` counts from, so a beat fits an Int32 (wraps after 24 days; readers subtract with `| 0`). */
export const runningOrigin = Date.now()

/** A change of the names behind the ids, for the reader of the slots. */
export type NameChange =
  | { readonly kind: 'code'; readonly id: number; readonly module: string; readonly generation: number }
  | { readonly kind: 'route'; readonly id: number; readonly code: number; readonly route: string }
  | { readonly kind: 'forget'; readonly id: number }

let nextCode = 1
let nextRoute = 1
/** The names of live code ids and their routes, replayed to a reader that comes later. */
const live = new Map<number, NameChange[]>()
let reader: ((change: NameChange) => void) | undefined

/** Sends every name change to `fn` (the watchdog), the live names first; `undefined` stops. */
export function readNames(fn: ((change: NameChange) => void) | undefined): void {
  reader = fn
  if (fn) for (const changes of live.values()) for (const change of changes) fn(change)
}

/** A new id for one generation's code. */
export function codeId(module: string, generation: number): number {
  const id = nextCode++
  const change: NameChange = { kind: 'code', id, module, generation }
  live.set(id, [change])
  reader?.(change)
  return id
}

/** A new id for a route of the generation with code id `code`, named like `GET /hello/busy`. */
export function routeId(code: number, route: string): number {
  const id = nextRoute++
  const change: NameChange = { kind: 'route', id, code, route }
  live.get(code)?.push(change)
  reader?.(change)
  return id
}

/** The generation stopped (or never started): its names are dropped. */
export function forgetCode(code: number): void {
  if (!live.delete(code)) return
  reader?.({ kind: 'forget', id: code })
}

/**
 * Runs `fn`, marked as the code of generation `code` doing `what` (a route id
 * or a `part`). Only the synchronous part is marked: a stall happens there.
 */
export function runAs<T>(code: number, what: number, fn: () => T): T {
  const slots = runningSlots
  const outerCode = slots[slot.code] as number
  const outerRoute = slots[slot.route] as number
  slots[slot.code] = code
  slots[slot.route] = what
  try {
    return fn()
  } finally {
    slots[slot.code] = outerCode
    slots[slot.route] = outerRoute
  }
}
