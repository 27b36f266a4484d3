import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { reasonOf } from '../errors.js'

export { exitCodes, reportFatal } from '../process-exit.js'

export const version = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version

/**
 * Errors a command has already printed as its JSON answer (`--json`); any other error of a
 * `--json` run is printed as `{ "result": "error", code, message, ... }` by the CLI's entry.
 */
export const answeredAsJson = new WeakSet<object>()

/** A bad command line: reported as NYALA_ERR_CLI_USAGE with exit code 2. */
export class UsageError extends Error {}

export type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] }
export type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>['options']

export function parse(args: string[], options: OptionSpec): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true }) as ParsedArgs
  } catch (err) {
    // Node's text for an unknown flag goes on about positionals starting with '-': name the flag
    const code = (err as { code?: string }).code
    const flag = /'([^']+)'/.exec(reasonOf(err))?.[1]
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && flag) throw new UsageError(`unknown option "${flag}"`)
    throw new UsageError(reasonOf(err))
  }
}
