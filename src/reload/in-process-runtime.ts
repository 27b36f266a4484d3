import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { type NyalaError, nyalaError } from '../errors.js'
import { faultPoint } from '../fault-point.js'
import { Generation } from '../runtime/generation.js'
import type { CommitRequest, ModuleRuntime, PlanItem, Prepared, PrepareRequest } from './module-runtime.js'
import type { RuntimeHost } from './reload-host.js'
import { RequestGate } from './request-gate.js'

interface Staged {
  readonly items: readonly PlanItem[]
  /** The generation each item serves before the swap (running ones only). */
  readonly olds: Map<PlanItem, Generation>
  readonly next: Map<PlanItem, Generation>
  readonly counts: Map<PlanItem, number>
  readonly gates: Map<string, RequestGate>
}

/**
 * The module runtime of a single process: generations start in this process,
 * beside the old ones, and the dispatch table of this process swaps to them.
 * A worker process runs one too, driven by its supervisor's PREPARE, COMMIT
 * and ABORT.
 */
export class InProcessRuntime implements ModuleRuntime {
  readonly #staged = new Map<number, Staged>()

  constructor(private readonly host: RuntimeHost) {}

  async prepare(request: PrepareRequest): Promise<Prepared> {
    const host = this.host
    const opts = host.options
    const items = request.items
    const staged: Staged = {
      items,
      olds: new Map(),
      next: new Map(),
      counts: new Map(items.map((p) => [p, p.record.generations])),
      gates: new Map(),
    }
    for (const p of items) {
      const old = p.wasRunning ? p.record.generation : undefined
      if (old) staged.olds.set(p, old)
    }
    this.#staged.set(request.id, staged)

    // blocking mode (Impala): new requests to the affected modules wait while the old drain
    if (request.blocking) {
      for (const p of staged.olds.keys()) staged.gates.set(p.name, new RequestGate())
      for (const [name, gate] of staged.gates) host.gates.set(name, gate)
      host.publish(staged.gates.keys())
      // HTTP requests only: an open WebSocket can last for hours, and requests must not wait for
      // it; it stays on the old generation until it closes or the drain after the swap ends it
      await Promise.all(
        [...staged.olds.values()].map((g) => g.waitIdle(opts.autoReload.drainTimeoutMs, true)),
      )
      request.onBlocked?.([...staged.gates.keys()])
    }

    const byName = new Map<string, Generation>()
    const lookup = lookupIn(byName, host)
    const down = new Map<string, NyalaError>()
    const generations: Record<string, number> = {}
    const fail = async (error: NyalaError, module: string): Promise<Prepared> => {
      await this.abort(request.id)
      return { ok: false, error, module }
    }
    for (const p of items) {
      if (p.removed || !p.bundle || p.down) continue
      const missing = p.bundle.manifest.dependsOn.find((d) => {
        const inSet = items.find((q) => q.name === d)
        return inSet ? !byName.has(d) : host.modules.get(d)?.state !== 'running'
      })
      if (missing !== undefined) {
        const err = nyalaError('NYALA_ERR_DEPENDENCY_FAILED', { module: p.name, dependency: missing })
        if (p.changed || p.wasRunning) return fail(err, p.name)
        down.set(p.name, err)
        continue
      }
      const previous = await staged.olds.get(p)?.handoff()
      faultPoint('generation-start')
      const started = await host.startGeneration(p.record, p.bundle, previous, lookup)
      if (!(started instanceof Generation)) {
        if (p.changed || p.wasRunning) return fail(started, p.name)
        down.set(p.name, started)
        continue
      }
      staged.next.set(p, started)
      byName.set(p.name, started)
      generations[p.name] = started.number
    }
    return { ok: true, generations, down }
  }

  async abort(id: number): Promise<void> {
    const staged = this.#staged.get(id)
    if (!staged) return
    this.#staged.delete(id)
    for (const p of [...staged.items].reverse()) {
      await staged.next.get(p)?.stop()
      // the stopped generations never served: their numbers are given out again
      p.record.generations = staged.counts.get(p) ?? p.record.generations
    }
    this.#openGates(staged)
  }

  /** The records already say what runs after the change (the coordinator set them); this swaps. */
  async commit(request: CommitRequest): Promise<{ drained: Promise<void> }> {
    const staged = this.#staged.get(request.id)
    if (!staged) throw new Error(`reload ${request.id} was not prepared`)
    this.#staged.delete(request.id)
    for (const p of staged.items) {
      const old = staged.olds.get(p)
      if (old) p.record.servedBefore += old.served
      p.record.generation = staged.next.get(p)
    }
    this.host.publish(request.publish)
    this.#openGates(staged)
    // dependents first, as they started last
    const olds = [...staged.olds].reverse()
    return { drained: this.#drain(request.id, olds) }
  }

  /** Callers publish the table first: a released request must find the new state. */
  #openGates(staged: Staged): void {
    const host = this.host
    for (const [name, gate] of staged.gates) {
      if (host.gates.get(name) === gate) host.gates.delete(name)
    }
    if (staged.gates.size === 0) return
    host.publish(staged.gates.keys())
    for (const gate of staged.gates.values()) gate.open()
    staged.gates.clear()
  }

  async #drain(id: number, olds: readonly [PlanItem, Generation][]): Promise<void> {
    const host = this.host
    const timeout = host.options.autoReload.drainTimeoutMs
    const idling = Promise.all(olds.map(([, g]) => g.waitIdle(timeout)))
    faultPoint('drain')
    const idle = await idling
    for (const [p, old] of olds) {
      // idle already (the usual case under keep-alive load): without a turn of the event loop the
      // stop would run in the swap's own block of the serving thread
      await yieldToLoop()
      await old.stop()
      host.log.info(
        { module: p.name, generation: old.number, reload: id },
        `module ${p.name} generation ${old.number} stopped`,
      )
    }
    const forced = olds.filter((_, i) => idle[i] === false).map(([p]) => p.name)
    if (forced.length > 0)
      host.log.warn(
        { reload: id, modules: forced, timeout },
        `old generations stopped with requests or WebSockets in flight after auto.reload.drain.timeout: ${forced.join(', ')}`,
      )
  }
}

/**
 * `ctx.use` for the generations a reload starts: the new generation of a
 * dependency in the same reload, else the running one. Made outside the
 * prepare's scope on purpose: a closure created there would share its
 * context, which holds the old generations, and pin every one of them.
 */
function lookupIn(staged: ReadonlyMap<string, Generation>, host: RuntimeHost): (dep: string) => unknown {
  return (dep) => (staged.has(dep) ? staged.get(dep)?.provided : host.runningProvided(dep))
}
