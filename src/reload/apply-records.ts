import type { Bundle } from '../bundle/open-bundle.js'
import type { NyalaError } from '../errors.js'
import { dependencyOrder, nodeOf } from '../graph/module-graph.js'
import type { ModuleRecord } from '../runtime/module-record.js'
import type { RecordsHost } from './reload-host.js'

/** One module of a committed reload, as its records must say afterwards. */
export interface RecordUpdate {
  readonly name: string
  readonly record: ModuleRecord
  readonly isNew: boolean
  readonly removed: boolean
  /** New content (a change with a bundle), with the file it lives in once committed. */
  readonly bundle?: Bundle | undefined
  readonly file?: string | undefined
  /** Why the module does not run after the reload (when it has no new generation). */
  readonly down: NyalaError | undefined
}

/**
 * What a committed reload changes in the host's records, graph and start
 * order, before the dispatch table swaps: the coordinator runs it on its
 * records, and a worker process on its own.
 */
export function applyRecords(
  host: RecordsHost,
  updates: readonly RecordUpdate[],
  generations: Readonly<Record<string, number>>,
  lastReload: { at: string; ms: number },
  reload: number,
): void {
  for (const u of updates) {
    const record = u.record
    if (u.removed) {
      host.modules.delete(u.name)
      host.graph.delete(u.name)
      continue
    }
    if (u.isNew) host.modules.set(u.name, record)
    if (u.bundle) {
      record.bundle = u.bundle
      record.file = u.file ?? record.file
      host.graph.set(nodeOf(u.name, u.bundle.manifest))
    }
    if (generations[u.name] !== undefined) {
      record.state = 'running'
      record.error = undefined
      record.reloadError = undefined
      record.lastReload = lastReload
    } else {
      record.state = 'failed'
      record.error = u.down
      if (u.down)
        host.log.error({ ...u.down.toJSON(), module: u.name, bundle: record.file, reload }, u.down.message)
    }
  }
  // the order a fresh start would have (dependencies first, then by name): appending the
  // affected set, as this did before, was a valid order too, but moved each reloaded module to
  // the end of `nyala status`, `GET /modules` and the console's table, which list in this order
  host.order = dependencyOrder([...host.modules.values()].map((m) => nodeOf(m.name, m.bundle?.manifest)))
}
