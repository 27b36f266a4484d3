import type { Bundle } from '../bundle/open-bundle.js'
import type { HostOptions } from '../config/host-options.js'
import { type NyalaError, nyalaError } from '../errors.js'
import { affectedBy, type GraphNode, planGraph } from '../graph/module-graph.js'
import type { NyalaHost } from '../host.js'
import { prefixConflicts } from '../http/dispatch-table.js'
import { checkSyntax } from '../loader/load-module.js'
import { Generation } from '../runtime/generation.js'
import { type ModuleRecord, newRecord } from '../runtime/module-record.js'
import type { Change, ReloadResult } from './change.js'
import { commitChange } from './commit-files.js'
import type { ModuleLocks } from './module-locks.js'
import type { ReloadEvents } from './reload-events.js'
import { RequestGate } from './request-gate.js'

interface Planned {
  readonly name: string
  readonly record: ModuleRecord
  readonly isNew: boolean
  readonly change: Change | undefined
  /** The content the new generation runs: the change's, or the module's current one. */
  readonly bundle: Bundle | undefined
  readonly old: Generation | undefined
  readonly wasRunning: boolean
  next: Generation | undefined
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
    private readonly host: NyalaHost,
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
    this.events.emit({ id, phase: 'start', trigger, modules: names })

    // step 1: validate in memory before anything is locked or stopped
    for (const change of changes) {
      if (!change.bundle) continue
      try {
        checkSyntax(change.bundle)
      } catch (err) {
        return this.#failed(id, trigger, names, [], t0, err as NyalaError, change.name)
      }
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
      if (live.length === 0) {
        const ms = performance.now() - t0
        if (this.#options.reload.debug)
          log.info({ reload: id, trigger, modules: names }, 'reload: content unchanged, nothing to do')
        this.events.emit({ id, phase: 'unchanged', trigger, modules: names })
        return { id, result: 'unchanged', trigger, changed: [], affected: [], generations: {}, ms }
      }
      affected = this.#affected(live)
      return await this.#apply(id, trigger, live, affected, t0)
    } finally {
      release()
    }
  }

  /** Reports a change refused before it became a transaction (a bundle that does not open). */
  refuse(trigger: string, module: string, error: NyalaError, t0 = performance.now()): ReloadResult {
    const id = ++this.#ids
    this.events.emit({ id, phase: 'start', trigger, modules: [module] })
    return this.#failed(id, trigger, [module], [], t0, error, module)
  }

  /** A change still to make: new content, a new module, or a module to remove. */
  #isChange(change: Change): boolean {
    const record = this.host.modules.get(change.name)
    if (change.kind === 'remove') return record !== undefined
    if (!record) return true
    if (change.force) return true
    return (
      record.bundle?.hash !== change.bundle?.hash ||
      (change.source !== undefined && change.source !== change.target)
    )
  }

  /** The graph as it would be after the changes. */
  #nodesAfter(changes: readonly Change[]): GraphNode[] {
    const byName = new Map(changes.map((c) => [c.name, c]))
    const nodes: GraphNode[] = []
    const names = new Set([...this.host.modules.keys(), ...byName.keys()])
    for (const name of names) {
      const change = byName.get(name)
      if (change?.kind === 'remove') continue
      const manifest = change?.bundle?.manifest ?? this.host.modules.get(name)?.bundle?.manifest
      nodes.push({
        name,
        dependsOn: manifest?.dependsOn ?? [],
        optionalDependsOn: manifest?.optionalDependsOn ?? [],
      })
    }
    return nodes
  }

  #nodesNow(): GraphNode[] {
    return [...this.host.modules.values()].map((m) => ({
      name: m.name,
      dependsOn: m.bundle?.manifest.dependsOn ?? [],
      optionalDependsOn: m.bundle?.manifest.optionalDependsOn ?? [],
    }))
  }

  /** The changed modules and their dependents, before and after the change. */
  #affected(changes: readonly Change[]): string[] {
    const names = changes.map((c) => c.name)
    const after = affectedBy(this.#nodesAfter(changes), names)
    const before = affectedBy(this.#nodesNow(), names)
    return [...new Set([...after, ...before])]
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

    // the graph after the change: a new cycle or missing dependency refuses the reload
    const nodes = this.#nodesAfter(changes)
    const plan = planGraph(nodes)
    // removed modules are not in the new graph, but their old generations must go
    const removedNames = changes.filter((c) => c.kind === 'remove').map((c) => c.name)
    const order = [
      ...removedNames,
      ...plan.order.filter((n) => affected.includes(n) && !removedNames.includes(n)),
    ]
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
        old: existing?.state === 'running' ? existing.generation : undefined,
        wasRunning: existing?.state === 'running',
        next: undefined,
        down: plan.failures.get(name),
      }
      if (item.down && (change || item.wasRunning) && !this.#downByRemoval(item.down, byName)) {
        return this.#failed(id, trigger, changed, affected, t0, item.down, name)
      }
      planned.push(item)
    }
    const removed = removedNames

    // two modules claiming one prefix after the change
    const claims: { module: string; prefix: string }[] = []
    for (const node of nodes) {
      const bundle = byName.get(node.name)?.bundle ?? host.modules.get(node.name)?.bundle
      if (bundle) claims.push({ module: node.name, prefix: bundle.manifest.prefix })
    }
    for (const c of prefixConflicts(claims)) {
      if (byName.has(c.module) || byName.has(c.other)) {
        const module = byName.has(c.other) ? c.other : c.module
        return this.#failed(
          id,
          trigger,
          changed,
          affected,
          t0,
          nyalaError('NYALA_ERR_PREFIX_CONFLICT', c),
          module,
        )
      }
    }

    // blocking mode (Impala): new requests to the affected modules wait while the old drain
    const gates = new Map<string, RequestGate>()
    if (opts.autoReload.mode === 'blocking') {
      for (const p of planned) if (p.old) gates.set(p.name, new RequestGate())
      for (const [name, gate] of gates) host.gates.set(name, gate)
      host.publish()
      await Promise.all(planned.map((p) => p.old?.waitIdle(opts.autoReload.drainTimeoutMs)))
      this.events.emit({ id, phase: 'blocked', trigger, modules: [...gates.keys()] })
    }
    // callers publish the table first: a released request must find the new state
    const openGates = () => {
      for (const [name, gate] of gates) {
        if (host.gates.get(name) === gate) host.gates.delete(name)
      }
      host.publish()
      for (const gate of gates.values()) gate.open()
    }

    // step 3: build and start the new generations in dependency order, beside the old ones
    const staged = new Map<string, Generation>()
    const lookup = (dep: string) => (staged.has(dep) ? staged.get(dep)?.provided : host.runningProvided(dep))
    const stopStarted = async () => {
      for (const p of [...planned].reverse()) {
        if (p.next) {
          await p.next.stop()
          p.next = undefined
        }
      }
    }
    for (const p of planned) {
      if (removed.includes(p.name) || !p.bundle || p.down) continue
      const down = p.bundle.manifest.dependsOn.find((d) => {
        const inSet = planned.find((q) => q.name === d)
        return inSet ? !staged.has(d) : host.modules.get(d)?.state !== 'running'
      })
      if (down !== undefined) {
        p.down = nyalaError('NYALA_ERR_DEPENDENCY_FAILED', { module: p.name, dependency: down })
        if (p.change || p.wasRunning) {
          await stopStarted()
          host.publish()
          openGates()
          return this.#failed(id, trigger, changed, affected, t0, p.down, p.name)
        }
        continue
      }
      const previous = await p.old?.handoff()
      const started = await host.startGeneration(p.record, p.bundle, previous, lookup)
      if (!(started instanceof Generation)) {
        if (p.change || p.wasRunning) {
          await stopStarted()
          host.publish()
          openGates()
          return this.#failed(id, trigger, changed, affected, t0, started, p.name)
        }
        p.down = started
        continue
      }
      p.next = started
      staged.set(p.name, started)
    }
    this.events.emit({ id, phase: 'started', trigger, modules: [...staged.keys()] })

    // step 5: commit the files; a failure here still changes nothing
    const again: Change[] = []
    for (const p of planned) {
      if (!p.change || p.change.kind === 'remove') continue
      try {
        const outcome = await commitChange(p.change, p.record.file)
        if (outcome.newerSource && p.change.source) again.push(p.change)
      } catch (err) {
        await stopStarted()
        host.publish()
        openGates()
        return this.#failed(id, trigger, changed, affected, t0, err as NyalaError, p.name)
      }
    }

    // step 6: one synchronous block: records, then the dispatch table, swapped at once
    const at = new Date().toISOString()
    const ms = performance.now() - t0
    const generations: Record<string, number> = {}
    const olds: Planned[] = []
    for (const p of planned) {
      const record = p.record
      if (p.old) {
        record.servedBefore += p.old.served
        olds.push(p)
      }
      if (removed.includes(p.name)) {
        host.modules.delete(p.name)
        continue
      }
      if (p.isNew) host.modules.set(p.name, record)
      if (p.change?.bundle) {
        record.bundle = p.change.bundle
        record.file = p.change.target ?? p.change.source ?? record.file
      }
      record.generation = p.next
      if (p.next) {
        record.state = 'running'
        record.error = undefined
        record.reloadError = undefined
        record.lastReload = { at, ms: Math.round(ms * 10) / 10 }
        generations[p.name] = p.next.number
      } else {
        record.state = 'failed'
        record.error = p.down
        if (p.down)
          log.error({ ...p.down.toJSON(), module: p.name, bundle: record.file, reload: id }, p.down.message)
      }
    }
    host.order = plan.order
    host.publish()
    openGates()
    staged.clear()
    log.info(
      { reload: id, trigger, changed, affected, generations, removed, ms: Math.round(ms * 10) / 10 },
      `reloaded ${changed.join(', ')} (${affected.length} modules) in ${Math.round(ms)} ms`,
    )
    this.events.emit({ id, phase: 'swapped', trigger, modules: [...affected], generations, ms })

    // step 7: drain and stop the old generations, dependents first, without holding the reload up
    const drain = this.#drain(id, trigger, olds.reverse())
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

  async #drain(id: number, trigger: string, olds: readonly Planned[]): Promise<void> {
    const t0 = performance.now()
    const timeout = this.#options.autoReload.drainTimeoutMs
    const idle = await Promise.all(olds.map((p) => p.old?.waitIdle(timeout)))
    for (const p of olds) {
      if (!p.old) continue
      await p.old.stop()
      this.host.log.info(
        { module: p.name, generation: p.old.number, reload: id },
        `module ${p.name} generation ${p.old.number} stopped`,
      )
    }
    const forced = olds.filter((_, i) => idle[i] === false).map((p) => p.name)
    if (forced.length > 0)
      this.host.log.warn(
        { reload: id, modules: forced, timeout },
        `old generations stopped with requests in flight after auto.reload.drain.timeout: ${forced.join(', ')}`,
      )
    this.events.emit({
      id,
      phase: 'drained',
      trigger,
      modules: olds.map((p) => p.name),
      ms: performance.now() - t0,
    })
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
      this.host.publish()
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
