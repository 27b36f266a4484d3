import { readlinkSync } from 'node:fs'
import os from 'node:os'
import { parentPort, threadId, workerData } from 'node:worker_threads'
import { errorToWire } from '../bundle/bundle-transfer.js'
import type { Bundle } from '../bundle/open-bundle.js'
import { nyalaError, reasonOf } from '../errors.js'
import { bundleReader } from '../loader/bundle-reader.js'
import { FileCache } from '../loader/file-cache.js'
import { createLogger } from '../logger.js'
import { liveOwners, stoppedOwners } from '../runtime/code-owner.js'
import { Generation } from '../runtime/generation.js'
import { RequestStats } from '../runtime/request-stats.js'
import { attribute } from '../supervise/attribution.js'
import type { FromThread, ThreadData, ToThread } from './protocol.js'
import type { RequestMessage } from './protocol-requests.js'
import { ThreadRequests } from './thread-requests.js'

// A module thread (src/isolate/module-thread.ts starts it): one module, every generation of it,
// built and served here with the host's own loader and Generation, so its loading, its reloads
// and its requests never hold the thread that serves the other modules.

const data = workerData as ThreadData
const port = parentPort!
const { options, module } = data
// pino on fd 1, written synchronously from this thread: a module's log lines cost the serving thread nothing
const log = createLogger(options.logLevel, options.logFormat).child({ thread: threadId })
// a lease file of its own (`<pid>-<thread id>`): the process's is the serving thread's to write
const files = new FileCache(options.cacheDir, undefined, `${process.pid}-${threadId}`)
const stats = new RequestStats()
const generations = new Map<number, Generation>()

const post = (message: FromThread) => port.postMessage(message)

function newest(): Generation | undefined {
  let found: Generation | undefined
  for (const g of generations.values()) if (!found || g.number > found.number) found = g
  return found
}

/**
 * Lowers this thread's CPU priority below the serving thread's (Linux: a
 * thread's nice value is its own), so when both want the CPU, requests to
 * the other modules go first. Returns the thread id and its nice value.
 */
function lowerPriority(nice: number): { tid: number | null; nice: number | null } {
  if (process.platform !== 'linux') return { tid: null, nice: null }
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (nice > 0) os.setPriority(tid, Math.min(19, os.getPriority(tid) + nice))
    return { tid, nice: os.getPriority(tid) }
  } catch (err) {
    log.warn({ module, reason: reasonOf(err) }, `module ${module}: cannot lower its thread's priority`)
    return { tid: null, nice: null }
  }
}

function crashed(err: unknown, origin: 'uncaughtException' | 'unhandledRejection'): void {
  const found = attribute(err, liveOwners, stoppedOwners)
  const stack = (err as { stack?: unknown } | null)?.stack
  post({
    t: 'crash',
    origin,
    generation: found?.owner.generation ?? newest()?.number ?? null,
    message: reasonOf(err),
    stack: typeof stack === 'string' ? stack : String(err),
  })
}
process.on('uncaughtException', (err) => crashed(err, 'uncaughtException'))
process.on('unhandledRejection', (reason) => crashed(reason, 'unhandledRejection'))

/**
 * The bundle a live generation runs, when it is the same content under the same file name (a
 * forced reload, a restart after a crash): nothing to read. The name matters as much as the
 * content: code is compiled under `<file>/<entry>`, which crash attribution reads.
 */
function known(files: readonly string[], hash: string): Bundle | undefined {
  for (const g of generations.values())
    if (g.bundle.hash === hash && files.includes(g.bundle.file)) return g.bundle
  return undefined
}

/** Reads on the reader thread as the host does: script digests, for code caches and held wrappers. */
async function read(files: readonly string[], kind: 'zip' | 'directory'): Promise<Bundle> {
  let error: unknown
  for (const file of new Set(files)) {
    const result = await bundleReader.read(file, {
      directory: kind === 'directory',
      maxBytes: options.bundleMaxBytes,
      name: module,
      checkSyntax: false,
    })
    if (result.ok) return result.bundle
    error ??= result.error
    // only a file that is gone sends it to the next place
    if ((result.error as NodeJS.ErrnoException).code !== 'ENOENT') break
  }
  throw error
}

async function start(msg: Extract<ToThread, { t: 'start' }>): Promise<void> {
  const t0 = performance.now()
  const bundle = known(msg.files, msg.hash) ?? (await read(msg.files, msg.kind))
  if (bundle.hash !== msg.hash)
    throw nyalaError('NYALA_ERR_ISOLATED_BUNDLE_CHANGED', {
      bundle: bundle.file,
      expected: msg.hash,
      found: bundle.hash,
    })
  const t1 = performance.now()
  // state handed across a reload stays in this thread: the generation it replaces hands it over
  const old = newest()
  const previous = await old?.handoff()
  const generation = new Generation({
    bundle,
    generation: msg.generation,
    config: msg.config,
    log: log.child({ module, generation: msg.generation }),
    previous,
    lookup: () => undefined,
    startTimeoutMs: options.moduleStartTimeoutMs,
    stopTimeoutMs: options.moduleStopTimeoutMs,
    logRequests: options.logRequests,
    previousCode: old?.code,
    stats,
    files,
    makeCodeCaches: (b, entries) => void bundleReader.makeCodeCaches(b, entries),
  })
  await generation.start()
  generations.set(generation.number, generation)
  post({ t: 'started', id: msg.id, readMs: t1 - t0, startMs: generation.startMs })
}

async function stop(msg: Extract<ToThread, { t: 'stop' }>): Promise<void> {
  const generation = generations.get(msg.generation)
  generations.delete(msg.generation)
  await generation?.stop()
  post({ t: 'stopped', id: msg.id })
}

const requests = new ThreadRequests(
  (message, transfer) => port.postMessage(message, transfer ?? []),
  (number) => generations.get(number)?.app,
)

port.on('message', (msg: ToThread | RequestMessage) => {
  if (msg.t === 'ping') post({ t: 'pong' })
  else if (msg.t === 'start')
    start(msg).catch((err: unknown) => post({ t: 'failed', id: msg.id, error: errorToWire(err) }))
  else if (msg.t === 'stop') stop(msg).catch(() => post({ t: 'stopped', id: msg.id }))
  else requests.handle(msg)
})

post({ t: 'ready', ...lowerPriority(options.isolation.nice) })
