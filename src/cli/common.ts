import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { isNyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'

/** Exit codes, documented in the README. */
export const exitCodes = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  /** `watchdog.action=exit`: the event loop was stuck for `watchdog.stall.ms`. */
  stalled: 3,
})

export const version = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version

/** A bad command line: reported as NYALA_ERR_CLI_USAGE with exit code 2. */
export class UsageError extends Error {}

export type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] }
export type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>['options']

export function parse(args: string[], options: OptionSpec): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true }) as ParsedArgs
  } catch (err) {
    throw new UsageError(reasonOf(err))
  }
}

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
