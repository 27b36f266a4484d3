/**
 * Erlang's restart intensity: at most `max` restarts within a sliding window
 * of `windowMs`. One crash more than that is a crash loop, and the supervisor
 * stops restarting.
 */
export class IntensityWindow {
  readonly #times: number[] = []

  constructor(
    readonly max: number,
    readonly windowMs: number,
    /** Restarts counted before this window existed (a chain of processes hands them on). */
    earlier: readonly number[] = [],
  ) {
    this.#times.push(...[...earlier].sort((a, b) => a - b))
  }

  /** The restarts in the window ending at `now`, oldest first. */
  times(now = Date.now()): readonly number[] {
    this.count(now)
    return [...this.#times]
  }

  /** Restarts counted in the window ending at `now`. */
  count(now = Date.now()): number {
    while (this.#times.length > 0 && now - (this.#times[0] as number) >= this.windowMs) this.#times.shift()
    return this.#times.length
  }

  /** Counts a restart at `now` and returns true, or returns false when the window is full. */
  admit(now = Date.now()): boolean {
    if (this.count(now) >= this.max) return false
    this.#times.push(now)
    return true
  }
}
