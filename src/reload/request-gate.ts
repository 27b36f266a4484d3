import { timedOut, withTimeout } from '../runtime/with-timeout.js'

/**
 * Holds new requests to a module while a blocking-mode reload swaps it
 * (Impala's behaviour), bounded by `auto.reload.block.timeout`. A promise
 * rather than a lock: waiters are released all at once when the swap is done,
 * and a waiter that times out leaves nothing queued behind it.
 */
export class RequestGate {
  #open!: () => void
  readonly #opened: Promise<void>
  #isOpen = false

  constructor() {
    this.#opened = new Promise<void>((resolve) => {
      this.#open = resolve
    })
  }

  get isOpen(): boolean {
    return this.#isOpen
  }

  open(): void {
    this.#isOpen = true
    this.#open()
  }

  /** Resolves true when the gate opens, false after `ms`. */
  async wait(ms: number): Promise<boolean> {
    if (this.#isOpen) return true
    return (await withTimeout(this.#opened, ms)) !== timedOut
  }
}
