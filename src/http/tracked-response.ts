import { type IncomingMessage, ServerResponse } from 'node:http'

/**
 * The listener's response class: calls `onClose` once when the response
 * closes (finished, or its connection gone), as a `'close'` listener would.
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
  onClose: (() => void) | undefined = undefined

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'close') {
      const onClose = this.onClose
      if (onClose !== undefined) {
        this.onClose = undefined
        onClose()
      }
    }
    return super.emit(event, ...args)
  }
}
