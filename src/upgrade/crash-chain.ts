import { IntensityWindow } from '../supervise/intensity.js'

/**
 * The environment variable that carries the times (epoch ms, comma-separated) of the
 * host-crash replacements that led to this process, from each crashed process to its
 * successor. A process manager's fresh start does not set it: a new chain begins.
 */
export const crashChainVariable = 'NYALA_HOST_CRASHES'

/**
 * How many times in a row a crashed host has replaced itself, within a window. A
 * successor that crashes as soon as it serves would otherwise start the next one, and
 * so on for ever; past `max` replacements within `windowMs` the chain ends with an
 * exit 1, so the process manager (or a person) sees it.
 *
 * Read once and removed from the environment, so module code and the processes it
 * starts never see it.
 */
export class CrashChain {
  readonly #window: IntensityWindow

  constructor(max: number, windowMs: number, env: NodeJS.ProcessEnv = process.env, now = Date.now()) {
    const raw = env[crashChainVariable]
    delete env[crashChainVariable]
    // anything that is not a past time is not ours to trust (a hand-set value, a clock step)
    const earlier = (raw ?? '')
      .split(',')
      .map(Number)
      .filter((t) => Number.isSafeInteger(t) && t > 0 && t <= now)
    this.#window = new IntensityWindow(max, windowMs, earlier)
  }

  /** Replacements in the window ending at `now`. */
  count(now = Date.now()): number {
    return this.#window.count(now)
  }

  /**
   * Counts one more replacement and returns the successor's environment, or undefined
   * when the window is full (a crash loop).
   */
  admit(now = Date.now()): Record<string, string> | undefined {
    if (!this.#window.admit(now)) return undefined
    return { [crashChainVariable]: this.#window.times(now).join(',') }
  }
}
