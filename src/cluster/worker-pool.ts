import type { ChildProcess } from 'node:child_process'
import type { Socket } from 'node:net'
import {
  type BundleTransfer,
  bundleToTransfer,
  errorFromWire,
  errorToWire,
} from '../bundle/bundle-transfer.js'
import type { HostOptions } from '../config/host-options.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { knownDigests } from '../loader/code-cache.js'
import type { Logger } from '../logger.js'
import { monotonicMs } from '../monotonic-clock.js'
import type {
  CommitRequest,
  ModuleRuntime,
  Prepared,
  PrepareRequest,
  RuntimeModuleView,
  RuntimeTiming,
  WorkerView,
} from '../reload/module-runtime.js'
import { type MinuteParts, type MinuteStats, minuteOf } from '../runtime/request-stats.js'
import type { FromWorker, ToWorker, WirePlanItem } from './protocol.js'
import { type WorkerCommand, WorkerSlot } from './worker-slot.js'

interface Started {
  readonly generations: Record<string, number>
  readonly ms: number
}

/** A worker's whole start-up (every module's register) is bounded by this, or by module.start.timeout if longer. */
const minLoadTimeoutMs = 60_000
/** Replies a reload's commit, an abort or a describe owe: a worker answers them at once unless stuck. */
const replyTimeoutMs = 10_000

/**
 * The supervisor's side of worker processes, and the module runtime its
 * reload transactions drive: PREPARE goes to every serving worker, and only
 * when all of them answer READY does the coordinator commit the files and send
 * COMMIT; any error, exit or timeout sends ABORT to all. Accepted connections
 * are handed to the serving worker with the fewest open connections (see
 * `dispatch`). A worker that exits, or stops
 * answering pings for `watchdog.stall.ms`, is replaced in its slot, bounded by
 * `workers.restart.max` within `workers.restart.window`.
 */
export class WorkerPool implements ModuleRuntime {
  readonly slots: WorkerSlot[] = []
  /** The generation each module serves in the workers: a replacement starts its modules at these. */
  readonly #committed = new Map<string, number>()
  /** Reloads between their PREPARE and their COMMIT or ABORT: a replacement waits for them. */
  #inFlight = 0
  #quiet: (() => void)[] = []
  /** Slots still loading: a PREPARE waits for them, so every serving worker takes part in it. */
  readonly #loading = new Set<Promise<unknown>>()
  /** The workers each reload was prepared in, until its commit or abort. */
  readonly #targets = new Map<number, WorkerSlot[]>()
  /** The generations each worker started for a reload, until its commit or abort. */
  readonly #preparedIn = new Map<number, Map<WorkerSlot, Started>>()
  #next = 0
  #pings = 0
  #pingTimer: NodeJS.Timeout | undefined
  #closing = false
  readonly #loadTimeoutMs: number

  constructor(
    private readonly options: HostOptions,
    private readonly log: Logger,
    command: WorkerCommand,
  ) {
    const { workers, maxRestarts, restartWindowMs } = options.cluster
    for (let i = 1; i <= workers; i++) {
      const slot = new WorkerSlot(i, command, log, maxRestarts, restartWindowMs)
      slot.onExit = (code, signal, child) => this.#exited(slot, code, signal, child)
      slot.rehand = (socket) => this.dispatch(socket)
      this.slots.push(slot)
    }
    this.#loadTimeoutMs = Math.max(minLoadTimeoutMs, options.moduleStartTimeoutMs)
  }

  get serving(): WorkerSlot[] {
    return this.slots.filter((s) => s.state === 'serving')
  }

  /**
   * Hands an accepted connection to the serving worker with the fewest open
   * connections (ties in turn); one that cannot take it passes it on. Measured
   * against Node cluster's round-robin and a shared listening socket
   * (bench/cluster-balance.js, docs/workers-bench.md): under keep-alive load
   * both left one worker with most connections in some runs, since a
   * connection never moves; fewest-open kept every run within 1.1.
   */
  readonly dispatch = (socket: Socket, tried = 0): void => {
    if (socket.destroyed) return
    const serving = this.serving
    if (serving.length === 0 || tried >= serving.length) {
      socket.destroy()
      return
    }
    const start = this.#next++
    let slot = serving[start % serving.length]!
    for (let i = 1; i < serving.length; i++) {
      const other = serving[(start + i) % serving.length]!
      if (other.openConnections < slot.openConnections) slot = other
    }
    slot.handed++
    if (!slot.handOver(socket, (s) => this.dispatch(s, tried + 1))) this.dispatch(socket, tried + 1)
  }

  async loadAll(): Promise<ReadonlyMap<string, RuntimeModuleView>> {
    this.log.info(
      { workers: this.slots.length },
      `starting ${this.slots.length} worker processes; each loads every module`,
    )
    const loaded = await Promise.all(this.slots.map((slot) => this.#start(slot)))
    const first = loaded.find((m) => m !== undefined)
    if (!first)
      throw nyalaError('NYALA_ERR_CLUSTER_NO_WORKERS', { reason: 'no worker process loaded the modules' })
    for (const view of first.values())
      if (view.generation !== null) this.#committed.set(view.name, view.generation)
    this.#pingTimer = this.#watch()
    return first
  }

  /** Starts a process in the slot and waits for its modules; undefined when it did not make it. */
  async #start(slot: WorkerSlot): Promise<Map<string, RuntimeModuleView> | undefined> {
    const child = slot.spawn(this.#committed)
    const t0 = performance.now()
    const loading = slot.waitFor('loaded', 0, this.#loadTimeoutMs, () =>
      nyalaError('NYALA_ERR_WORKER_START', {
        worker: slot.id,
        pid: child.pid ?? 0,
        timeout: this.#loadTimeoutMs,
        reason: 'no answer',
      }),
    )
    this.#loading.add(loading)
    try {
      const m = (await loading) as Extract<FromWorker, { t: 'loaded' }>
      if (this.#closing || slot.child !== child) return undefined
      slot.state = 'serving'
      slot.lastPong = performance.now()
      slot.generations = new Map(
        m.modules.filter((v) => v.generation !== null).map((v) => [v.name, v.generation as number]),
      )
      this.log.info(
        { worker: slot.id, workerPid: child.pid, ms: Math.round(performance.now() - t0) },
        `worker ${slot.id} (pid ${child.pid}) serves`,
      )
      return new Map(m.modules.map((v) => [v.name, v]))
    } catch (err) {
      const e = isNyalaError(err)
        ? err
        : nyalaError('NYALA_ERR_WORKER_START', {
            worker: slot.id,
            pid: child.pid ?? 0,
            timeout: this.#loadTimeoutMs,
            reason: reasonOf(err),
          })
      this.log.error({ ...e.toJSON(), worker: slot.id }, e.message)
      if (slot.child === child) child.kill('SIGKILL')
      return undefined
    } finally {
      this.#loading.delete(loading)
    }
  }

  #exited(slot: WorkerSlot, code: number | null, signal: NodeJS.Signals | null, child: ChildProcess): void {
    if (this.#closing || slot.child !== child) return
    const reason = signal ?? `exit code ${code}`
    const e = nyalaError('NYALA_ERR_WORKER_EXITED', {
      worker: slot.id,
      pid: child.pid ?? 0,
      reason,
      during: '',
    })
    this.log.error({ ...e.toJSON(), worker: slot.id }, e.message)
    this.#replace(slot)
  }

  /** A new process in the slot, unless its restarts ran out; the others serve meanwhile. */
  #replace(slot: WorkerSlot): void {
    if (!slot.intensity.admit()) {
      slot.state = 'failed'
      const { maxRestarts, restartWindowMs } = this.options.cluster
      const e = nyalaError('NYALA_ERR_WORKER_SLOT_FAILED', {
        worker: slot.id,
        restarts: slot.restarts,
        window: restartWindowMs / 1000,
        max: maxRestarts,
        serving: this.serving.length,
      })
      this.log.error({ ...e.toJSON(), worker: slot.id }, e.message)
      return
    }
    slot.restarts++
    slot.state = 'starting'
    // not while a reload is between PREPARE and COMMIT: the replacement must load committed files
    void this.#whenQuiet().then(() => (this.#closing ? undefined : this.#start(slot)))
  }

  #whenQuiet(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#quiet.push(resolve))
  }

  #settle(): void {
    this.#inFlight--
    if (this.#inFlight > 0) return
    const waiting = this.#quiet
    this.#quiet = []
    for (const resolve of waiting) resolve()
  }

  /** Pings the serving workers; one silent for `watchdog.stall.ms` is replaced, then killed. */
  #watch(): NodeJS.Timeout | undefined {
    const stallMs = this.options.watchdog.stallMs
    if (stallMs === 0) return undefined
    const every = Math.max(100, Math.floor(stallMs / 4))
    let lastTick = performance.now()
    const timer = setInterval(() => {
      const now = performance.now()
      const late = now - lastTick > 2 * every
      lastTick = now
      // this process's own loop was held up (a busy machine, a long synchronous step): the
      // answers it has not read yet are no sign of a stuck worker, so every worker starts afresh
      if (late) {
        for (const slot of this.slots) if (slot.state === 'serving') slot.lastPong = now
        return
      }
      for (const slot of this.slots) {
        if (slot.state !== 'serving') continue
        const silent = now - slot.lastPong
        if (silent > stallMs) this.#stalled(slot, Math.round(silent))
        else slot.send({ t: 'ping', id: ++this.#pings })
      }
    }, every)
    timer.unref()
    return timer
  }

  #stalled(slot: WorkerSlot, ms: number): void {
    const stuck = slot.child
    slot.state = 'stalled'
    const e = nyalaError('NYALA_ERR_WORKER_STALLED', {
      worker: slot.id,
      pid: stuck?.pid ?? 0,
      ms,
      limit: this.options.watchdog.stallMs,
    })
    this.log.error({ ...e.toJSON(), worker: slot.id }, e.message)
    if (!slot.intensity.admit()) {
      stuck?.kill('SIGKILL')
      slot.state = 'failed'
      return
    }
    slot.restarts++
    // the new one first: the stuck one may still finish the requests it holds
    void this.#whenQuiet()
      .then(() => this.#start(slot))
      .finally(() => stuck?.kill('SIGKILL'))
  }

  async prepare(request: PrepareRequest): Promise<Prepared> {
    // a worker still loading takes part once it serves (bounded by its own load timeout)
    await Promise.allSettled([...this.#loading])
    const targets = this.serving
    if (targets.length === 0) {
      const error = nyalaError('NYALA_ERR_CLUSTER_NO_WORKERS', { reason: 'every worker slot failed' })
      return { ok: false, error, module: request.items[0]?.name ?? '' }
    }
    this.#inFlight++
    this.#targets.set(request.id, targets)
    const transfers = new Map<string, BundleTransfer>()
    const items: WirePlanItem[] = request.items.map((p) => {
      let bundle: BundleTransfer | undefined
      if (p.changed && p.bundle) {
        bundle = transfers.get(p.name) ?? bundleToTransfer(p.bundle)
        transfers.set(p.name, bundle)
      }
      return {
        name: p.name,
        bundle,
        digests: bundle && p.bundle ? knownDigests(p.bundle) : undefined,
        file: p.file,
        changed: p.changed,
        removed: p.removed,
        wasRunning: p.wasRunning,
        down: p.down && errorToWire(p.down),
        number: this.#highest(p.name, targets) + 1,
      }
    })
    const timeout = this.options.cluster.prepareTimeoutMs
    const message = { t: 'prepare' as const, id: request.id, blocking: request.blocking, items }
    const answers = await Promise.allSettled(
      targets.map((slot) =>
        slot.request(message, 'prepared', request.id, timeout, () =>
          nyalaError('NYALA_ERR_CLUSTER_PREPARE_TIMEOUT', {
            worker: slot.id,
            pid: slot.pid ?? 0,
            reload: request.id,
            timeout,
          }),
        ),
      ),
    )
    if (request.blocking) request.onBlocked?.(request.items.filter((p) => p.wasRunning).map((p) => p.name))
    const timings: RuntimeTiming[] = []
    const started = new Map<WorkerSlot, Started>()
    this.#preparedIn.set(request.id, started)
    let failure: { error: NyalaError; module: string } | undefined
    let first: Extract<FromWorker, { t: 'prepared'; ok: true }> | undefined
    for (const [i, answer] of answers.entries()) {
      const slot = targets[i]!
      if (answer.status === 'rejected') {
        const err = answer.reason as NyalaError
        failure ??= { error: withReload(err, request.id), module: request.items[0]?.name ?? '' }
        continue
      }
      const m = answer.value as Extract<FromWorker, { t: 'prepared' }>
      if (!m.ok) {
        failure ??= { error: errorFromWire(m.error) as NyalaError, module: m.module }
        this.log.error(
          {
            worker: slot.id,
            workerPid: slot.pid,
            reload: request.id,
            code: failure.error.code,
            module: m.module,
          },
          `reload ${request.id}: worker ${slot.id} could not start ${m.module}: aborting in every worker`,
        )
        continue
      }
      first ??= m
      started.set(slot, { generations: m.generations, ms: Math.round(m.ms * 10) / 10 })
      timings.push({ worker: slot.id, pid: slot.pid ?? 0, prepareMs: Math.round(m.ms * 10) / 10 })
    }
    if (failure || !first) {
      await this.abort(request.id)
      const f = failure ?? {
        error: nyalaError('NYALA_ERR_CLUSTER_NO_WORKERS', { reason: 'no worker answered' }),
        module: '',
      }
      return { ok: false, ...f }
    }
    const down = new Map(
      Object.entries(first.down).map(([name, w]) => [name, errorFromWire(w) as NyalaError]),
    )
    return { ok: true, generations: first.generations, down, timings }
  }

  async commit(request: CommitRequest) {
    const targets = this.#targets.get(request.id) ?? []
    const prepared = this.#preparedIn.get(request.id) ?? new Map<WorkerSlot, Started>()
    this.#targets.delete(request.id)
    this.#preparedIn.delete(request.id)
    const message = {
      t: 'commit' as const,
      id: request.id,
      publish: request.publish,
      at: request.at,
      ms: request.ms,
      // every worker swaps at this instant (Dispatcher.swapAt), so the skew is how late the
      // COMMIT reached the latest one past the lead, not each one's delivery and loop delay
      swapAt: monotonicMs() + this.options.cluster.commitLeadMs,
    }
    // the drains' answers come after the swaps (the COMMIT below is their only message); settled
    // at once, so a worker that exits meanwhile is no unhandled rejection
    const drained = Promise.allSettled(
      targets.map((slot) =>
        slot.waitFor('drained', request.id, 24 * 3600_000, () =>
          nyalaError('NYALA_ERR_CLUSTER_NO_WORKERS', { reason: 'drain' }),
        ),
      ),
    ).then(() => {})
    const swaps = targets.map((slot) =>
      slot.request(message, 'committed', request.id, replyTimeoutMs, () =>
        nyalaError('NYALA_ERR_WORKER_EXITED', {
          worker: slot.id,
          pid: slot.pid ?? 0,
          reason: 'no answer to COMMIT',
          during: ` during reload ${request.id}`,
        }),
      ),
    )
    const answers = await Promise.allSettled(swaps)
    this.#settle()
    const timings: RuntimeTiming[] = []
    for (const [i, answer] of answers.entries()) {
      const slot = targets[i]!
      if (answer.status === 'fulfilled') {
        const m = answer.value as Extract<FromWorker, { t: 'committed' }>
        const mine = prepared.get(slot)
        for (const name of request.publish) {
          const n = mine?.generations[name]
          if (n === undefined) slot.generations.delete(name)
          else slot.generations.set(name, n)
        }
        timings.push({ worker: slot.id, pid: slot.pid ?? 0, prepareMs: mine?.ms ?? 0, swappedAt: m.at })
      } else {
        // it swaps when it comes back, or its replacement loads the committed files
        this.log.error({ worker: slot.id, reason: reasonOf(answer.reason) }, reasonOf(answer.reason))
      }
    }
    for (const name of request.publish) {
      const n = request.generations[name]
      if (n === undefined) this.#committed.delete(name)
      else this.#committed.set(name, n)
    }
    return { timings, drained }
  }

  async abort(id: number): Promise<void> {
    const targets = this.#targets.get(id)
    if (!targets) return
    this.#targets.delete(id)
    this.#preparedIn.delete(id)
    await Promise.allSettled(
      targets.map((slot) =>
        slot.request({ t: 'abort', id }, 'aborted', id, replyTimeoutMs, () =>
          nyalaError('NYALA_ERR_WORKER_EXITED', {
            worker: slot.id,
            pid: slot.pid ?? 0,
            reason: 'no answer to ABORT',
            during: ` during reload ${id}`,
          }),
        ),
      ),
    )
    this.#settle()
  }

  /** The highest generation of `module` any of `slots` serves, or that the workers committed. */
  #highest(module: string, slots: readonly WorkerSlot[]): number {
    let n = this.#committed.get(module) ?? 0
    for (const slot of slots) n = Math.max(n, slot.generations.get(module) ?? 0)
    return n
  }

  generationsOf(module: string): readonly (number | null)[] {
    return this.slots.filter((s) => s.state === 'serving').map((s) => s.generations.get(module) ?? null)
  }

  /**
   * Asks a worker something it answers at once (figures, a description); undefined when it does
   * not answer within 2 s: a stuck worker is left out of what is shown, not waited for.
   */
  async #ask<T extends 'stats' | 'metrics' | 'described'>(
    slot: WorkerSlot,
    reply: T,
  ): Promise<Extract<FromWorker, { t: T }> | undefined> {
    const id = ++this.#pings
    const t = reply === 'described' ? 'describe' : reply
    try {
      return (await slot.request({ t, id } as ToWorker, reply, id, 2000, () =>
        nyalaError('NYALA_ERR_CLUSTER_NO_WORKERS', { reason: 'no answer' }),
      )) as Extract<FromWorker, { t: T }>
    } catch {
      return undefined
    }
  }

  async stats(): Promise<ReadonlyMap<string, MinuteStats>> {
    const parts = new Map<string, MinuteParts[]>()
    for (const m of await Promise.all(this.serving.map((slot) => this.#ask(slot, 'stats')))) {
      for (const [name, p] of Object.entries(m?.modules ?? {}))
        parts.set(name, [...(parts.get(name) ?? []), p])
    }
    return new Map([...parts].map(([name, p]) => [name, minuteOf(p)]))
  }

  async metrics(): Promise<{ worker: number; metrics: unknown }[]> {
    const serving = this.serving
    const answers = await Promise.all(serving.map((slot) => this.#ask(slot, 'metrics')))
    return answers.flatMap((m, i) => (m ? [{ worker: serving[i]!.id, metrics: m.metrics }] : []))
  }

  async workers(): Promise<WorkerView[]> {
    return Promise.all(
      this.slots.map(async (slot) => {
        const base = { worker: slot.id, pid: slot.pid ?? null, state: slot.state, restarts: slot.restarts }
        const m = slot.state === 'serving' ? await this.#ask(slot, 'described') : undefined
        if (!m) return { ...base, rss: null, inflight: null, served: null, generations: {} }
        const generations: Record<string, number> = {}
        for (const v of m.modules) if (v.generation !== null) generations[v.name] = v.generation
        const served = m.modules.reduce((n, v) => n + v.served, 0)
        return { ...base, rss: m.rss, inflight: m.inflight, served, generations }
      }),
    )
  }

  /** Each serving worker starts draining its connections (ModuleRuntime.drain). */
  drain(graceMs: number): void {
    for (const slot of this.slots) if (slot.state === 'serving') slot.send({ t: 'drain', graceMs })
  }

  /** Each worker drains its connections and stops its modules within `graceMs`; then it is killed. */
  async close(graceMs: number): Promise<void> {
    this.#closing = true
    clearInterval(this.#pingTimer)
    const exits = this.slots.map((slot) => {
      const child = slot.child
      if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
      slot.state = 'stopping'
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      if (!slot.send({ t: 'stop', graceMs })) child.kill('SIGTERM')
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs + 2000)
      return exited.finally(() => clearTimeout(kill))
    })
    await Promise.all(exits)
  }
}

/** A worker's exit during a reload names the reload. */
function withReload(err: NyalaError, reload: number): NyalaError {
  if (err.code !== 'NYALA_ERR_WORKER_EXITED') return err
  const details = err.details as Record<string, string | number>
  return nyalaError('NYALA_ERR_WORKER_EXITED', {
    worker: details.worker ?? 0,
    pid: details.pid ?? 0,
    reason: details.reason ?? '',
    during: ` during reload ${reload}`,
  })
}
