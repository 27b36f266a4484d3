import type { BundleTransfer, WireError } from '../bundle/bundle-transfer.js'
import type { RuntimeModuleView } from '../reload/module-runtime.js'
import type { MinuteParts } from '../runtime/request-stats.js'

/**
 * The messages between a supervisor and its worker processes, over the IPC
 * channel of `child_process.fork` with `serialization: 'advanced'` (bundles
 * carry their contents as one ArrayBuffer). Every request a reply answers has
 * an `id`: a reload's id for prepare, commit and abort, a counter otherwise.
 */
export interface WirePlanItem {
  readonly name: string
  /** New content: the change's bundle. Absent: the worker's own current bundle (a dependent). */
  readonly bundle?: BundleTransfer | undefined
  /**
   * The digests the supervisor's reader thread made of the bundle's scripts
   * (code-cache.ts): a worker keys its code caches by them instead of hashing
   * the scripts on the thread that serves.
   */
  readonly digests?: { readonly entries: readonly string[]; readonly values: readonly string[] } | undefined
  readonly file?: string | undefined
  readonly changed: boolean
  readonly removed: boolean
  readonly wasRunning: boolean
  readonly down?: WireError | undefined
  /** The generation number to start: one past the highest any worker has served. */
  readonly number: number
}

export type ToWorker =
  | { readonly t: 'prepare'; readonly id: number; readonly blocking: boolean; readonly items: WirePlanItem[] }
  | {
      readonly t: 'commit'
      readonly id: number
      readonly publish: readonly string[]
      readonly at: string
      readonly ms: number
      /**
       * The instant to swap at, monotonic clock (src/monotonic-clock.ts): sent
       * `cluster.commit.lead` ahead, so every worker swaps at the same instant
       * whatever its loop was doing when the message came.
       */
      readonly swapAt: number
    }
  | { readonly t: 'abort'; readonly id: number }
  /** An accepted connection (the socket is the message's handle); `seq` is reported back in `conns`. */
  | { readonly t: 'conn'; readonly seq: number }
  | { readonly t: 'ping'; readonly id: number }
  | { readonly t: 'describe'; readonly id: number }
  | { readonly t: 'metrics'; readonly id: number }
  | { readonly t: 'stats'; readonly id: number }
  /**
   * The supervisor has stopped accepting: answer requests on kept-alive connections with
   * `Connection: close` and close them as they go idle, while a reload may still run
   * (`stop` follows once none does). Sent after every `conn`, so no connection comes later.
   */
  | { readonly t: 'drain'; readonly graceMs: number }
  | { readonly t: 'stop'; readonly graceMs: number }

export type WorkerModuleView = RuntimeModuleView

export type FromWorker =
  | { readonly t: 'loaded'; readonly modules: WorkerModuleView[] }
  | {
      readonly t: 'prepared'
      readonly id: number
      readonly ok: true
      readonly generations: Record<string, number>
      readonly down: Record<string, WireError>
      readonly ms: number
    }
  | {
      readonly t: 'prepared'
      readonly id: number
      readonly ok: false
      readonly error: WireError
      readonly module: string
    }
  /**
   * `at`: the instant from which this worker routed to the new generations
   * (monotonic clock): the COMMIT's `swapAt`, or when the COMMIT arrived if
   * that was later. `arrivedAt`: when it arrived.
   */
  | { readonly t: 'committed'; readonly id: number; readonly at: number; readonly arrivedAt: number }
  | { readonly t: 'drained'; readonly id: number }
  | { readonly t: 'aborted'; readonly id: number }
  | { readonly t: 'pong'; readonly id: number }
  /** Each module's last minute of requests in this worker. */
  | { readonly t: 'stats'; readonly id: number; readonly modules: Record<string, MinuteParts> }
  /** prom-client's `getMetricsAsJSON()` of the worker's registry. */
  | { readonly t: 'metrics'; readonly id: number; readonly metrics: unknown }
  /**
   * Connections: how many it was handed in all, how many of them are still open, and the `seq`
   * of each received since the last report (sent on the control pipe when they change, at most
   * every 25 ms).
   */
  | { readonly t: 'conns'; readonly received: number; readonly open: number; readonly got: readonly number[] }
  /** A worker's own reload (a crashed module restarted in it): the generations it serves now. */
  | { readonly t: 'generations'; readonly generations: Record<string, number> }
  | {
      readonly t: 'described'
      readonly id: number
      readonly rss: number
      readonly inflight: number
      readonly modules: WorkerModuleView[]
    }

/** The environment variables a worker process is started with. */
export const workerEnv = {
  /** The worker's slot, 1 to N: present only in a worker process. */
  id: 'NYALA_WORKER_ID',
  /** JSON `{ module: generation }`: the generations committed when a replacement starts. */
  generations: 'NYALA_WORKER_GENERATIONS',
} as const

/** The worker slot this process serves in, or undefined in a supervisor or a single process. */
export function workerSlotOf(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env[workerEnv.id]
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined
  return Number(raw)
}
