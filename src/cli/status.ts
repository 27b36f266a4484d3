import { isNyalaError } from '../errors.js'
import type { WorkerView } from '../reload/module-runtime.js'
import { adminFlags, adminFlagsHelp, callAdmin, findAdmin } from './admin-client.js'
import { exitCodes, parse, UsageError } from './common.js'

const statusHelp = `Usage: nyala status [options]

Prints the modules of a running host: state, version, generation, prefix,
isolation (none, or thread and the state of the module's thread), requests in
flight, crashes of its code, the signing keys and sequence of a signed bundle,
last reload and last reload error. With worker processes
(workers > 1), a second table: each worker's slot, pid, state, replacements,
memory, requests in flight and the generations it serves; a module whose
workers serve different generations shows them all in GEN (e.g. 3/2).

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
  const answer = await callAdmin(target, 'GET', '/workers')
  // a host from before worker processes has no such route: its modules are all there is
  const workers = answer.status === 200 ? ((answer.body.workers ?? []) as WorkerView[]) : []
  const cluster = workers.some((w) => w.worker > 0)
  if (values.json) {
    process.stdout.write(`${JSON.stringify(cluster ? { ...body, workers } : body, null, 2)}\n`)
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
        generationCell(m),
        String(m.prefix ?? '-'),
        isolationCell(m),
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
      'ISOLATION',
      'INFLIGHT',
      'CRASHES',
      'SIGNED BY',
      'RELOAD',
      'LAST RELOAD',
      'ERROR',
    ]
    const tables = [table(head, rows)]
    if (cluster) {
      const workerRows = workers.map((w) => [
        String(w.worker),
        String(w.pid ?? '-'),
        w.state,
        String(w.restarts),
        w.rss === null ? '-' : `${Math.round(w.rss / 1048576)} MiB`,
        String(w.inflight ?? '-'),
        Object.entries(w.generations)
          .map(([m, g]) => `${m}:${g}`)
          .join(' ') || '-',
      ])
      tables.push(table(['WORKER', 'PID', 'STATE', 'RESTARTS', 'RSS', 'INFLIGHT', 'GENERATIONS'], workerRows))
    }
    process.stdout.write(`${tables.join('\n\n')}\n`)
  }
  return modules.every((m) => m.state === 'running') ? exitCodes.ok : exitCodes.failure
}

/** The generation, or each worker's when they differ (a reload that reached some workers only). */
function generationCell(m: Record<string, unknown>): string {
  const workers = m.workers as { generations: (number | null)[]; same: boolean } | undefined
  if (workers && !workers.same) return workers.generations.map((g) => g ?? '-').join('/')
  return String(m.generation ?? '-')
}

/** Columns padded to their widest cell; the last column is left ragged. */
function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(head), ...rows.map(line)].join('\n')
}

/** `none`, or `thread` with the state of the module's thread (`thread (running)`). */
function isolationCell(m: Record<string, unknown>): string {
  if (m.isolation !== 'thread') return String(m.isolation ?? 'none')
  if (m.threadIn === 'workers') return 'thread (in each worker)'
  const thread = m.thread as { state: string } | null | undefined
  return thread ? `thread (${thread.state})` : 'thread (none)'
}
