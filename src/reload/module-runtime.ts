import type { WireError } from '../bundle/bundle-transfer.js'
import type { Bundle } from '../bundle/open-bundle.js'
import type { NyalaError } from '../errors.js'
import type { ModuleRecord } from '../runtime/module-record.js'
import type { MinuteStats } from '../runtime/request-stats.js'

/**
 * One module of a reload's affected set, in dependency order, as the
 * coordinator planned it. `record` is the runtime's own record of the module
 * (a new one for a module that does not exist yet).
 */
export interface PlanItem {
  readonly name: string
  readonly record: ModuleRecord
  /** The content the new generation runs: the change's, or the module's current one. */
  readonly bundle: Bundle | undefined
  /** Where a changed module's bundle lives once committed. */
  readonly file?: string | undefined
  /** The module has a change of its own (new content, new module), not only a changed dependency. */
  readonly changed: boolean
  readonly removed: boolean
  readonly wasRunning: boolean
  /** Why the module will not run after this reload, known before anything starts. */
  readonly down: NyalaError | undefined
}

export interface PrepareRequest {
  readonly id: number
  readonly items: readonly PlanItem[]
  /** Blocking mode (Impala): new requests to the affected modules wait until the swap. */
  readonly blocking: boolean
  /** Blocking mode: called once the old generations of the set are idle and gated. */
  readonly onBlocked?: (modules: readonly string[]) => void
}

/** What PREPARE left: the new generations are started beside the old ones, not serving yet. */
export type Prepared =
  | {
      readonly ok: true
      /** The number of each generation started. */
      readonly generations: Readonly<Record<string, number>>
      /** Modules of the set that stay down (found while starting, e.g. a dependency that did not start). */
      readonly down: ReadonlyMap<string, NyalaError>
      /** Per runtime (one, or one per worker): how long its prepare took, ms. */
      readonly timings?: readonly RuntimeTiming[]
    }
  | { readonly ok: false; readonly error: NyalaError; readonly module: string }

export interface RuntimeTiming {
  readonly worker: number
  readonly pid: number
  readonly prepareMs: number
  /** The instant from which this runtime routed to the new generations, monotonic clock ms (commit skew). */
  swappedAt?: number
}

export interface CommitRequest {
  readonly id: number
  /** The modules whose routes the swap makes anew: removed ones first, then the plan's order. */
  readonly publish: readonly string[]
  /** The generations that serve after the swap. */
  readonly generations: Readonly<Record<string, number>>
  /** The reload's `lastReload`: when it swapped and how long it took. */
  readonly at: string
  readonly ms: number
}

/**
 * Where module code runs: one in-process runtime, or N worker processes. The
 * reload transaction (the coordinator) plans, validates and commits files; a
 * runtime only starts generations beside the old ones (prepare), swaps to them
 * (commit) or stops them (abort). Nothing else needs to know which it is.
 */
export interface ModuleRuntime {
  prepare(request: PrepareRequest): Promise<Prepared>
  /**
   * Swaps every prepared module in one step; resolves once every runtime has
   * swapped, with its timings. The old generations drain afterwards: `drained`
   * settles when they have stopped.
   */
  commit(request: CommitRequest): Promise<{ timings?: readonly RuntimeTiming[]; drained: Promise<void> }>
  /** Stops what `prepare` started; the old generations never stopped serving. */
  abort(id: number): Promise<void>
  /**
   * Worker processes only: starts them, each loading every module from the
   * modules directory, and resolves with what the first one runs.
   */
  loadAll?(): Promise<ReadonlyMap<string, RuntimeModuleView>>
  /** Worker processes only: each worker as `GET /workers` shows it. */
  workers?(): Promise<WorkerView[]>
  /** Worker processes only: the generation every worker serves of a module (`GET /modules`). */
  generationsOf?(module: string): readonly (number | null)[]
  /** Worker processes only: each module's last minute of requests, every serving worker's added up. */
  stats?(): Promise<ReadonlyMap<string, MinuteStats>>
  /** Worker processes only: each serving worker's prom-client `getMetricsAsJSON()`, by slot. */
  metrics?(): Promise<{ readonly worker: number; readonly metrics: unknown }[]>
  /**
   * Worker processes only: the listener has stopped accepting; each worker tells its kept-alive
   * clients to leave at once, without waiting for `close` (which waits for running reloads).
   */
  drain?(graceMs: number): void
  /** Stops what runs (worker processes: each one drains, then exits). */
  close?(graceMs: number): Promise<void>
}

/** One module as a runtime runs it. */
export interface RuntimeModuleView {
  readonly name: string
  readonly state: string
  readonly generation: number | null
  readonly inflight: number
  readonly served: number
  readonly error: WireError | null
}

/** One worker process, for `GET /workers` and `nyala status`. */
export interface WorkerView {
  readonly worker: number
  readonly pid: number | null
  /** `starting`, `serving`, `stalled`, `stopping`, `failed` (its restarts ran out). */
  readonly state: string
  readonly restarts: number
  readonly rss: number | null
  readonly inflight: number | null
  /** Requests it has answered since it started, every module. */
  readonly served: number | null
  /** The generation it serves of each running module. */
  readonly generations: Readonly<Record<string, number>>
}
