import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { nyalaError } from '../errors.js'
import { monotonicMs } from '../monotonic-clock.js'
import type { RequestGate } from '../reload/request-gate.js'
import { runningSlots, slot } from '../runtime/running-code.js'
import { DispatchTable } from './dispatch-table.js'
import { replyError } from './json-reply.js'
import type { TrackedResponse } from './tracked-response.js'
import { dispatchUpgrade } from './upgrade-dispatch.js'

/**
 * Hands each request to the Fastify instance of the module whose prefix
 * matches (longest wins), counting it in flight on that generation until the
 * response closes, so a reload can drain the old generation.
 */
export class Dispatcher {
  #table = new DispatchTable([])
  /** `auto.reload.block.timeout`: how long a request waits at a closed gate. */
  blockTimeoutMs = 10_000

  get table(): DispatchTable {
    return this.#table
  }

  /** Swaps scheduled by `swapAt`, in the order they were scheduled. */
  #due: { at: number; run: () => void }[] = []
  #dueTimer: NodeJS.Timeout | undefined

  /**
   * Runs `run` (a swap of the table) at the instant `at` of the monotonic
   * clock: before this dispatcher routes any request or upgrade at or after
   * `at`, or from a timer when no request comes. A request is routed by the
   * old table before `at` and by the new one from `at` on, however late this
   * process's loop gets to the timer: worker processes of one supervisor swap
   * together this way (src/cluster/, `cluster.commit.lead`). An `at` already
   * past runs at once.
   */
  swapAt(at: number, run: () => void): void {
    this.#due.push({ at, run })
    this.#runDue()
  }

  #runDue(): void {
    const now = monotonicMs()
    let ran = false
    while (this.#due.length > 0 && this.#due[0]!.at <= now) {
      this.#due.shift()!.run()
      ran = true
    }
    if (ran || this.#due.length === 0) {
      clearTimeout(this.#dueTimer)
      this.#dueTimer = undefined
    }
    const next = this.#due[0]
    // a timer can fire a little early by this clock (libuv caches its loop time): checked again then
    if (next && this.#dueTimer === undefined)
      this.#dueTimer = setTimeout(
        () => {
          this.#dueTimer = undefined
          this.#runDue()
        },
        Math.max(1, Math.ceil(next.at - now)),
      )
  }

  /** Replaces the whole table in one step. */
  swap(table: DispatchTable): DispatchTable {
    const old = this.#table
    this.#table = table
    return old
  }

  readonly handle = (req: IncomingMessage, res: TrackedResponse): void => {
    if (this.#due.length > 0) this.#runDue()
    const url = req.url ?? '/'
    const route = this.#table.lookup(url)
    if (!route) {
      replyError(res, nyalaError('NYALA_ERR_NO_MODULE', { path: url.split('?')[0] ?? url }))
      return
    }
    if (route.gate !== undefined) {
      this.#waitAtGate(route.gate, route.module, req, res)
      return
    }
    const generation = route.generation
    const app = generation?.app
    if (!generation || !app) {
      replyError(
        res,
        nyalaError('NYALA_ERR_MODULE_UNAVAILABLE', { module: route.module, state: route.state }),
        {
          'retry-after': '1',
        },
      )
      return
    }
    generation.inflight++
    generation.served++
    res.startedAt = performance.now()
    res.onClose = generation.release
    // for the watchdog: this generation's code runs until routing returns (its route
    // handler marks the route, src/runtime/route-marks.ts)
    const slots = runningSlots
    const code = generation.codeId
    slots[slot.code] = code
    slots[slot.lastCode] = code
    slots[slot.lastRoute] = 0
    app.routing(req, res)
    slots[slot.code] = 0
  }

  /** The listener's `upgrade` event (WebSockets), dispatched the same way (upgrade-dispatch.ts). */
  readonly upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.#due.length > 0) this.#runDue()
    dispatchUpgrade(this, req, socket, head)
  }

  #waitAtGate(gate: RequestGate, module: string, req: IncomingMessage, res: TrackedResponse): void {
    gate.wait(this.blockTimeoutMs).then((opened) => {
      if (res.destroyed) return
      // look up again: the table swapped while the request waited
      if (opened) this.handle(req, res)
      else
        replyError(
          res,
          nyalaError('NYALA_ERR_REQUEST_BLOCKED_TIMEOUT', { module, timeout: this.blockTimeoutMs }),
          { 'retry-after': '1' },
        )
    })
  }
}
