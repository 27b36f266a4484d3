import { isNyalaError } from '../errors.js'
import { adminFlags, adminFlagsHelp, callAdmin, findAdmin } from './admin-client.js'
import { answeredAsJson, exitCodes, parse, UsageError } from './common.js'

const reloadHelp = `Usage: nyala reload [name] [options]

Asks a running host to reload: one module (from its pending .tmp or staged file,
or its bundle) and its dependents, or, without a name, everything that changed
(a rescan, as SIGHUP). Prints what was reloaded.

Options:
  --force          rebuild the module even if its content did not change
${adminFlagsHelp}

Exit codes: 0 reloaded or unchanged, 1 the reload failed (the old code keeps
serving; the error is printed), a rescan refused a file that does not open (the
others reloaded), or the admin API cannot be reached, 2 usage error.`

export async function reload(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...adminFlags, force: { type: 'boolean' } })
  if (values.help) {
    process.stdout.write(`${reloadHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length > 1) throw new UsageError('reload takes at most one module name')
  const [name] = positionals
  const target = findAdmin(values)
  const path = name
    ? `/modules/${encodeURIComponent(name)}/reload${values.force ? '?force=true' : ''}`
    : '/reload'
  const { body } = await callAdmin(target, 'POST', path)
  // --json prints the answer whatever it is, an error's too (the error also goes to stderr)
  if (values.json) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`)
  if (isNyalaError(body)) {
    if (values.json) answeredAsJson.add(body)
    throw body
  }
  const error = body.error as { code: string; message: string } | undefined
  if (body.result === 'failed' && error) {
    process.stderr.write(`nyala: ${error.code}: ${error.message}\n`)
    return exitCodes.failure
  }
  if (!values.json) {
    const gens = Object.entries((body.generations ?? {}) as Record<string, number>)
      .map(([m, g]) => `${m}@${g}`)
      .join(' ')
    process.stdout.write(
      body.result === 'unchanged'
        ? 'unchanged: nothing to reload\n'
        : `reloaded in ${Math.round(Number(body.ms))} ms: ${gens}\n`,
    )
  }
  // a rescan refuses a file that does not open on its own, and reloads the others
  const refused = (body.refused ?? []) as { module: string; code: string; message: string }[]
  for (const r of refused) process.stderr.write(`nyala: ${r.code}: ${r.message}\n`)
  if (refused.length > 0) return exitCodes.failure
  return exitCodes.ok
}
