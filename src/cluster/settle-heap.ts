import { getHeapStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

type Collect = (options: { type: 'minor' | 'major'; execution: 'sync' | 'async' }) => void

/** Up to this much heap in use, a full collection is a pause of about 10 to 20 ms here. */
const fullCollectionBytes = 64 * 1024 * 1024

let collect: Collect | undefined | null

/**
 * Runs, before a worker answers READY, the collections a freshly started
 * generation would otherwise cause at a moment nobody chose. Building a
 * generation (a Fastify instance, its routes, the module's closures) leaves
 * megabytes of young objects that all survive, so the next scavenges copy
 * them (6 to 10 ms of a worker's loop on this machine), and the generations
 * the last reload stopped wait for a full collection (15 ms). Measured with
 * PerformanceObserver 'gc' entries, one of those pauses landed on a worker's
 * COMMIT in the reloads whose commit skew was worst. Run now, they cost the
 * same while the reload waits for READY anyway.
 *
 * With a small heap, one full collection: it also promotes the young
 * survivors. With a large one, only two scavenges (the first copies the
 * survivors, the second promotes them): a full collection of a large heap
 * would stop every worker at once for longer than it saves.
 *
 * The `gc` function comes from a context of its own, with `--expose-gc` set
 * only for that moment, so no module sees a global `gc` it was not started with.
 */
export function settleHeap(): void {
  if (collect === undefined) collect = exposeCollector()
  if (!collect) return
  if (getHeapStatistics().used_heap_size <= fullCollectionBytes) {
    collect({ type: 'major', execution: 'sync' })
    return
  }
  collect({ type: 'minor', execution: 'sync' })
  collect({ type: 'minor', execution: 'sync' })
}

function exposeCollector(): Collect | null {
  const given = (globalThis as { gc?: unknown }).gc
  if (typeof given === 'function') return given as Collect
  try {
    setFlagsFromString('--expose-gc')
    const fn = runInNewContext('gc') as unknown
    return typeof fn === 'function' ? (fn as Collect) : null
  } catch {
    return null
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}
