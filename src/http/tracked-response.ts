import { type IncomingMessage, ServerResponse } from 'node:http'

/**
 * The listener's response class: calls `onClose` once when the response
 * closes (finished, or its connection gone), as a `'close'` listener would,
 * with the response (so the generation counting it out can read `startedAt`).
 *
 * Why not `res.once('close', fn)`: the dispatcher counts every request out of
 * its generation, and a listener per request costs the `once` wrapper, its
 * bound function and two changes of the response's listener table, ~1.7k
 * instructions a request under callgrind (bench/dispatch-gap.md), where this
 * costs one field and a comparison per event.
 */
export class TrackedResponse<
  Request extends IncomingMessage = IncomingMessage,
> extends ServerResponse<Request> {
  onClose: ((res: TrackedResponse<Request>) => void) | undefined = undefined
  /** When the dispatcher handed it to a module (performance.now()), for the module's latency figures. */
  startedAt = 0

  // `arguments`, not a rest parameter: a response emits several events and
  // the spread call cost a rest array and a varargs call each time (callgrind)
  override emit(event: string | symbol): boolean {
    if (event === 'close') {
      const onClose = this.onClose
      if (onClose !== undefined) {
        this.onClose = undefined
        onClose(this)
      }
    }
    // biome-ignore lint/complexity/noArguments: see above
    if (arguments.length === 1) return super.emit(event)
    // biome-ignore lint/complexity/noArguments: see above
    return Reflect.apply(super.emit, this, arguments)
  }
}
