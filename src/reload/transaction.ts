import { syncFile } from '../bundle/durable.js'
import type { Bundle } from '../bundle/open-bundle.js'
import type { HostOptions } from '../config/host-options.js'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { faultPoint } from '../fault-point.js'
import { type GraphNode, nodeOf, orderAffected, planGraph } from '../graph/module-graph.js'
import { checkSyntax } from '../loader/load-module.js'
import { checkAddons } from '../loader/native-addon.js'
import { type ModuleRecord, newRecord } from '../runtime/module-record.js'
import { applyRecords } from './apply-records.js'
import type { Change, ReloadResult } from './change.js'
import { commitChange, sourceStillHolds } from './commit-files.js'
import type { ModuleLocks } from './module-locks.js'
import type { PlanItem, RuntimeTiming } from './module-runtime.js'
import type { ReloadEvents } from './reload-events.js'
import type { ReloadHost } from './reload-host.js'

interface Planned {
  readonly name: string
  readonly record: ModuleRecord
  readonly isNew: boolean
  readonly change: Change | undefined
  /** The content the new generation runs: the change's, or the module's current one. */
  readonly bundle: Bundle | undefined
  readonly wasRunning: boolean
  /** Why the module will not run after this reload (expected: a removed dependency, an old failure). */
  down: NyalaError | undefined
}

/**
 * The reload transaction (DESIGN.md "Reloading", steps 1 to 7) over the
 * affected set of some changes: validate everything first, lock, build and
 * start the new generations beside the old ones, commit the files, swap the
 * dispatch table in one step, then drain and stop the old generations. Any
 * failure before the swap stops what was started and leaves the old
 * generations serving and every file where it was.
 *
 * A module of the affected set that was not running before (failed at
 * start-up, say) and fails again does not fail the reload: it stays down with
 * its reason. A module that was running, or one whose content changed, must
 * start, or nothing changes.
 */
export class ReloadTransactions {
  #ids = 0
  /** Drains of old generations still under way; `close` waits for them. */
  readonly pending = new Set<Promise<void>>()

  constructor(
    private readonly host: ReloadHost,
    private readonly locks: ModuleLocks,
    private readonly events: ReloadEvents,
  ) {}

  get #options(): HostOptions {
    return this.host.options
  }

  async run(changes: readonly Change[], trigger: string, t0 = performance.now()): Promise<ReloadResult> {
    const id = ++this.#ids
    const log = this.host.log
    const names = [...new Set(changes.map((c) => c.name))]
    const files = Object.fromEntries(changes.flatMap((c) => (c.source ? [[c.name, c.source]] : [])))
    const hashes = Object.fromEntries(
      changes.flatMap((c) => (c.source && c.bundle ? [[c.name, c.bundle.hash]] : [])),
    )
    this.events.emit({ id, phase: 'start', trigger, modules: names, files, hashes })

    // step 1: validate in memory before anything is locked or stopped
    for (const change of changes) {
      if (!change.bundle) continue
      try {
        checkSyntax(change.bundle)
        checkAddons(change.bundle)
      } catch (err) {
        return this.#failed(id, trigger, names, [], t0, err as NyalaError, change.name)
      }
    }

    // the new bytes go to the disk while the new generations start: the commit's own flush before
    // its rename then finds them clean instead of waiting for the device on the reload's path
    if (this.#options.autoReload.fsync) {
      for (const c of changes)
        if (c.source && c.target && c.source !== c.target) syncFile(c.source).catch(() => {})
    }

    // step 2: lock the affected set and the new dependencies; the set may grow while waiting
    let release: () => void = () => {}
    let affected: string[] = []
    for (;;) {
      const wanted = this.#lockSet(changes)
      release = await this.locks.acquire(wanted)
      affected = this.#affected(changes)
      if (affected.every((n) => wanted.has(n))) break
      release()
    }
    try {
      const live = changes.filter((c) => this.#isChange(c))
      // a .tmp or staged copy of what already runs: moved into modules/ (so the deploy path is
      // left clean and the bundle on disk is what serves), nothing is rebuilt
      for (const c of changes) {
        if (live.includes(c) || !c.source || !c.target || c.source === c.target) continue
        // the same file committed meanwhile by the reload that made it run (a touch or rescan read
        // it too, then waited for the lock): its source is gone, or holds a newer file for its
        // own reload. Nothing to move; a commit now would replace `.previous` with what runs
        if (!(await sourceStillHolds(c))) continue
        const record = this.host.modules.get(c.name)
        try {
          await (await commitChange(c, record?.file, { sync: this.#options.autoReload.fsync })).flush()
          if (record && c.target) record.file = c.target
        } catch (err) {
          return this.#failed(id, trigger, names, [], t0, err as NyalaError, c.name)
        }
      }
      if (live.length === 0) {
        const ms = performance.now() - t0
        if (this.#options.reload.debug)
          log.info({ reload: id, trigger, modules: names }, 'reload: content unchanged, nothing to do')
        this.events.emit({ id, phase: 'unchanged', trigger, modules: names })
        return { id, result: 'unchanged', trigger, changed: [], affected: [], generations: {}, ms }
      }
      for (const c of live) {
        const rollback = this.#rollback(c)
        if (rollback) return this.#failed(id, trigger, names, [], t0, rollback, c.name)
      }
      affected = this.#affected(live)
      return await this.#apply(id, trigger, live, affected, t0)
    } finally {
      release()
    }
  }

  /** Reports a change refused before it became a transaction (a bundle from `file` that does not open). */
  refuse(
    trigger: string,
    module: string,
    file: string,
    error: NyalaError,
    t0 = performance.now(),
  ): ReloadResult {
    const id = ++this.#ids
    this.events.emit({ id, phase: 'start', trigger, modules: [module], files: { [module]: file } })
    return this.#failed(id, trigger, [module], [], t0, error, module)
  }

  /**
   * A signed bundle older than the signed one running: refused under the lock,
   * so it is compared with what serves when it would replace it. An unsigned
   * bundle has no sequence to compare (whether it may run at all is the trust
   * policy's question, answered when it was read).
   */
  #rollback(change: Change): NyalaError | undefined {
    const next = change.bundle?.signature
    const record = this.host.modules.get(change.name)
    const running = record?.bundle?.signature
    if (!next || !running || next.sequence >= running.sequence) return undefined
    return nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_ROLLBACK', {
      bundle: change.source ?? change.bundle?.file ?? change.name,
      sequence: next.sequence,
      running: running.sequence,
      module: change.name,
      generation: record?.generation?.number ?? 0,
    })
  }

  /** A change still to make: new content, a new module, or a module to remove. */
  #isChange(change: Change): boolean {
    const record = this.host.modules.get(change.name)
    if (change.ifGeneration !== undefined && record?.generation?.number !== change.ifGeneration) return false
    if (change.kind === 'remove') return record !== undefined
    if (!record) return true
    if (change.force) return true
    // a module that is not running is retried by any deploy of it, even of the same bytes
    if (record.state !== 'running' && change.source !== change.target) return true
    return record.bundle?.hash !== change.bundle?.hash
  }

  /** A module's node in the graph as it would be after the changes; `undefined` once removed. */
  #nodeAfter(name: string, byName: ReadonlyMap<string, Change>): GraphNode | undefined {
    const change = byName.get(name)
    if (change?.kind === 'remove') return undefined
    const record = this.host.modules.get(name)
    if (!change && !record) return undefined
    return nodeOf(name, change?.bundle?.manifest ?? record?.bundle?.manifest)
  }

  /**
   * The changed modules and their dependents, before and after the change, in
   * dependency order. Walks the host's dependents index from the changed
   * modules only: a reload costs what it touches, not what is installed.
   */
  #affected(changes: readonly Change[]): string[] {
    const byName = new Map(changes.map((c) => [c.name, c]))
    const set = this.host.graph.closure(byName.keys())
    return orderAffected(set, (name) => this.#nodeAfter(name, byName))
  }

  #lockSet(changes: readonly Change[]): Set<string> {
    const set = new Set(this.#affected(changes))
    // a dependency must not be reloaded or removed while a dependent starts against it
    for (const c of changes) {
      for (const dep of c.bundle?.manifest.dependsOn ?? []) set.add(dep)
      for (const dep of c.bundle?.manifest.optionalDependsOn ?? []) set.add(dep)
    }
    return set
  }

  async #apply(
    id: number,
    trigger: string,
    changes: readonly Change[],
    affected: readonly string[],
    t0: number,
  ): Promise<ReloadResult> {
    const host = this.host
    const log = host.log
    const opts = this.#options
    const byName = new Map(changes.map((c) => [c.name, c]))
    const changed = changes.map((c) => c.name)

    // the affected part of the graph after the change: a new cycle or missing dependency refuses
    // the reload. Only this part can change: the rest depends on nothing in it.
    const nodes: GraphNode[] = []
    for (const name of affected) {
      const node = this.#nodeAfter(name, byName)
      if (node) nodes.push(node)
    }
    const exists = (name: string) =>
      byName.has(name) ? byName.get(name)?.kind !== 'remove' : host.modules.has(name)
    const plan = planGraph(nodes, exists)
    // removed modules are not in the new graph, but their old generations must go
    const removed = changes.filter((c) => c.kind === 'remove').map((c) => c.name)
    const order = [...removed, ...plan.order.filter((n) => !removed.includes(n))]
    const planned: Planned[] = []
    for (const name of order) {
      const change = byName.get(name)
      const existing = host.modules.get(name)
      const record = existing ?? newRecord(name, change?.target ?? change?.source ?? name)
      const item: Planned = {
        name,
        record,
        isNew: !existing,
        change,
        bundle: change?.bundle ?? existing?.bundle,
        wasRunning: existing?.state === 'running',
        down: plan.failures.get(name),
      }
      if (item.down && (change || item.wasRunning) && !this.#downByRemoval(item.down, byName)) {
        return this.#failed(id, trigger, changed, affected, t0, item.down, name)
      }
      planned.push(item)
    }

    // two modules claiming one prefix after the change: against the table (modules outside the
    // change keep their prefixes) and among the changes
    const claimed = new Map<string, string>()
    for (const c of changes) {
      if (!c.bundle) continue
      const prefix = c.bundle.manifest.prefix
      const owner = host.dispatcher.table.ownerOf(prefix)
      // an owner in this change claims what its new manifest says, checked in this loop
      const other = claimed.get(prefix) ?? (owner !== undefined && !byName.has(owner) ? owner : undefined)
      if (other !== undefined && other !== c.name) {
        return this.#failed(
          id,
          trigger,
          changed,
          affected,
          t0,
          nyalaError('NYALA_ERR_PREFIX_CONFLICT', { module: other, other: c.name, prefix }),
          c.name,
        )
      }
      claimed.set(prefix, c.name)
    }

    // step 3: the runtime (this process, or every worker) builds and starts the new generations in
    // dependency order, beside the old ones
    const items: PlanItem[] = planned.map((p) => ({
      name: p.name,
      record: p.record,
      bundle: p.bundle,
      file: p.change?.target ?? p.change?.source,
      changed: p.change !== undefined,
      removed: removed.includes(p.name),
      wasRunning: p.wasRunning,
      down: p.down,
    }))
    const runtime = host.runtime
    const prepared = await runtime.prepare({
      id,
      items,
      blocking: opts.autoReload.mode === 'blocking',
      onBlocked: (modules) => this.events.emit({ id, phase: 'blocked', trigger, modules: [...modules] }),
    })
    if (!prepared.ok) return this.#failed(id, trigger, changed, affected, t0, prepared.error, prepared.module)
    for (const [name, err] of prepared.down) {
      const p = planned.find((q) => q.name === name)
      if (p) p.down = err
    }
    const abandon = async (error: NyalaError, module: string) => {
      await runtime.abort(id)
      return this.#failed(id, trigger, changed, affected, t0, error, module)
    }
    this.events.emit({ id, phase: 'started', trigger, modules: Object.keys(prepared.generations) })
    faultPoint('generation-started')

    // step 5: commit the files, one module at a time in dependency order (a kill between two leaves
    // the later ones' files in place, deployed by the next start's pickup); a failure here still
    // changes nothing
    const again: Change[] = []
    const flushes: { module: string; flush: () => Promise<void>; undo: () => Promise<void> }[] = []
    for (const p of planned) {
      if (!p.change || p.change.kind === 'remove') continue
      if (flushes.length > 0) faultPoint('commit-between')
      try {
        const outcome = await commitChange(p.change, p.record.file, { sync: opts.autoReload.fsync })
        flushes.push({ module: p.name, flush: outcome.flush, undo: outcome.undo })
        if (outcome.newerSource && p.change.source) again.push(p.change)
      } catch (err) {
        // the modules committed before this one go back too: the old generations keep serving,
        // so modules/ holds their bundles, and their .tmp or staged files wait as after a refusal
        for (const done of flushes.reverse()) {
          try {
            await done.undo()
          } catch (undoErr) {
            const e = undoErr as NyalaError
            log.error(
              { ...e.toJSON(), module: done.module, reload: id },
              `reload ${id}: ${done.module}'s files could not be put back after ${p.name}'s commit failed: ${e.message}`,
            )
          }
        }
        return abandon(err as NyalaError, p.name)
      }
    }
    faultPoint('commit-done')

    // step 6: one synchronous block: records, then the dispatch table, swapped at once
    const at = new Date().toISOString()
    const ms = performance.now() - t0
    const generations = prepared.generations
    applyRecords(
      host,
      planned.map((p) => ({
        name: p.name,
        record: p.record,
        isNew: p.isNew,
        removed: removed.includes(p.name),
        bundle: p.change?.bundle,
        file: p.change?.target ?? p.change?.source,
        down: p.down,
      })),
      generations,
      { at, ms: Math.round(ms * 10) / 10 },
      id,
    )
    const committed = await runtime.commit({
      id,
      publish: order,
      generations,
      at,
      ms: Math.round(ms * 10) / 10,
    })
    // with worker processes: each one's timings and the commit skew, reported once
    const cluster = committed.timings ? { workers: committed.timings, skewMs: skewOf(committed.timings) } : {}
    log.info(
      {
        reload: id,
        trigger,
        changed,
        affected,
        generations,
        removed,
        ms: Math.round(ms * 10) / 10,
        ...cluster,
      },
      `reloaded ${changed.join(', ')} (${affected.length} modules) in ${Math.round(ms)} ms`,
    )
    this.events.emit({
      id,
      phase: 'swapped',
      trigger,
      modules: [...affected],
      changed: [...changed],
      generations,
      ms,
      ...cluster,
    })

    // the commits' renames reach the disk after the swap, which never waits for the device
    const flushed = this.#flush(id, flushes)
    this.pending.add(flushed)
    void flushed.finally(() => this.pending.delete(flushed))

    // step 7: drain and stop the old generations, dependents first, without holding the reload up
    const drainStart = performance.now()
    const olds = planned.filter((p) => p.wasRunning).map((p) => p.name)
    const drain = committed.drained.then(() =>
      this.events.emit({
        id,
        phase: 'drained',
        trigger,
        modules: olds.reverse(),
        ms: performance.now() - drainStart,
      }),
    )
    this.pending.add(drain)
    void drain.finally(() => this.pending.delete(drain))
    if (again.length > 0)
      this.events.emit({ id, phase: 'newer-source', trigger, modules: again.map((c) => c.name) })
    return {
      id,
      result: 'reloaded',
      trigger,
      changed,
      affected: [...affected],
      generations,
      ms,
      again: again.map((c) => c.source ?? c.name),
      ...cluster,
    }
  }

  /** True when the planned failure only comes from a dependency this reload removes. */
  #downByRemoval(err: NyalaError, byName: ReadonlyMap<string, Change>): boolean {
    const dep = err.details.dependency
    if (typeof dep !== 'string') return false
    if (byName.get(dep)?.kind === 'remove') return true
    // a dependent of a dependent of the removed module
    return err.code === 'NYALA_ERR_DEPENDENCY_FAILED'
  }

  /** Flushes the directories of the committed files; a failure is logged: the swap is done. */
  async #flush(
    id: number,
    flushes: readonly { module: string; flush: () => Promise<void> }[],
  ): Promise<void> {
    for (const { module, flush } of flushes) {
      try {
        await flush()
      } catch (err) {
        const e = nyalaError('NYALA_ERR_COMMIT_SYNC', { module, reason: reasonOf(err) }, err)
        this.host.log.error({ ...e.toJSON(), reload: id }, e.message)
      }
    }
    faultPoint('commit-flushed')
  }

  #failed(
    id: number,
    trigger: string,
    changed: readonly string[],
    affected: readonly string[],
    t0: number,
    error: NyalaError,
    module: string,
  ): ReloadResult {
    const at = new Date().toISOString()
    const ms = performance.now() - t0
    const entry = { code: error.code, message: error.message, at }
    const record = this.host.modules.get(module)
    if (record) record.reloadError = entry
    else {
      // a new module that fails: shown as failed, so the operator sees why
      const fresh = newRecord(module, String(error.details.bundle ?? module))
      fresh.state = 'failed'
      fresh.error = error
      fresh.reloadError = entry
      this.host.modules.set(module, fresh)
      this.host.publish([module])
    }
    this.host.log.error(
      { ...error.toJSON(), module, reload: id, trigger, changed, ms: Math.round(ms * 10) / 10 },
      `reload of ${changed.join(', ') || module} failed, the old generation keeps serving: ${error.message}`,
    )
    this.events.emit({ id, phase: 'failed', trigger, modules: [...changed], error: entry, module })
    return {
      id,
      result: 'failed',
      trigger,
      changed,
      affected,
      generations: {},
      ms,
      error: { code: error.code, message: error.message, module },
    }
  }
}

/** Commit skew: the time between the first and the last runtime's swap. */
function skewOf(timings: readonly RuntimeTiming[]): number | undefined {
  const at = timings.map((t) => t.swappedAt).filter((t): t is number => t !== undefined)
  if (at.length < 2) return undefined
  return Math.round((Math.max(...at) - Math.min(...at)) * 1000) / 1000
}
