import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { reasonOf } from '../errors.js'

export { exitCodes, reportFatal } from '../process-exit.js'

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
