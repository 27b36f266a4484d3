import { isNyalaError, reasonOf } from './errors.js'
import type { Logger } from './logger.js'

// Below cli/ and upgrade/ alike: the process around a host (src/upgrade/process-lifecycle.ts)
// exits with these codes too, and upgrade/ must not import cli/, which imports it.

/** Exit codes, documented in the README. */
export const exitCodes = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  /** `watchdog.action=exit`: the event loop was stuck for `watchdog.stall.ms`. */
  stalled: 3,
})

/** Logs a fatal error (with its code when it has one) and echoes it on stderr. */
export function reportFatal(log: Logger, err: unknown): number {
  if (isNyalaError(err)) {
    log.fatal(err.toJSON(), err.message)
    process.stderr.write(`nyala: ${err.code}: ${err.message}\n`)
  } else {
    log.fatal({ err }, reasonOf(err))
    process.stderr.write(`nyala: ${reasonOf(err)}\n`)
  }
  return exitCodes.failure
}
