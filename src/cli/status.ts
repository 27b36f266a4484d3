import { isNyalaError } from '../errors.js'
import { adminFlags, adminFlagsHelp, callAdmin, findAdmin } from './admin-client.js'
import { exitCodes, parse, UsageError } from './common.js'

const statusHelp = `Usage: nyala status [options]

Prints the modules of a running host: state, version, generation, prefix,
requests in flight, crashes of its code, the signing keys and sequence of a
signed bundle, last reload and last reload error.

Options:
${adminFlagsHelp}

Exit codes: 0 every module running, 1 a module is not running or the admin API
cannot be reached, 2 usage error.`

export async function status(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, adminFlags)
  if (values.help) {
    process.stdout.write(`${statusHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length > 0)
    throw new UsageError(`status takes no arguments, got "${positionals.join(' ')}"`)
  const target = findAdmin(values)
  const { status: code, body } = await callAdmin(target, 'GET', '/modules')
  if (code !== 200 || isNyalaError(body)) throw body
  const modules = (body.modules ?? []) as Record<string, unknown>[]
  if (values.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`)
  } else {
    const rows = modules.map((m) => {
      const lastError = m.lastError as { code: string; message: string } | null
      const error = m.error as { code: string } | null
      const lastReload = m.lastReload as { at: string; ms: number } | null
      const signature = m.signature as { keyIds: string[]; sequence: number } | null | undefined
      return [
        String(m.name),
        String(m.state),
        String(m.version ?? '-'),
        String(m.generation ?? '-'),
        String(m.prefix ?? '-'),
        String(m.inflight ?? 0),
        String(m.crashes ?? 0),
        signature ? `${signature.keyIds.join(',')} #${signature.sequence}` : '-',
        m.registered === false ? 'no' : m.reloadable === false ? 'never' : 'yes',
        lastReload ? `${lastReload.at} (${lastReload.ms} ms)` : '-',
        lastError ? `${lastError.code}: ${lastError.message}` : error ? error.code : '-',
      ]
    })
    const head = [
      'MODULE',
      'STATE',
      'VERSION',
      'GEN',
      'PREFIX',
      'INFLIGHT',
      'CRASHES',
      'SIGNED BY',
      'RELOAD',
      'LAST RELOAD',
      'ERROR',
    ]
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
    const line = (cells: string[]) =>
      cells
        .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd()
    process.stdout.write(`${[line(head), ...rows.map(line)].join('\n')}\n`)
  }
  return modules.every((m) => m.state === 'running') ? exitCodes.ok : exitCodes.failure
}
