import { readlinkSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
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
import {
  type FromThread,
  generationHeader,
  remoteHeader,
  type ThreadData,
  type ToThread,
} from './protocol.js'

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

/** A request the host's proxy handed over: to the generation it names, as the client's. */
function serve(req: IncomingMessage, res: ServerResponse): void {
  const headers = req.headers
  const number = Number(headers[generationHeader])
  const remote = headers[remoteHeader]
  delete headers[generationHeader]
  delete headers[remoteHeader]
  // the proxy puts both first
  if (req.rawHeaders[0] === generationHeader) req.rawHeaders.splice(0, 4)
  const app = generations.get(number)?.app
  if (!app) {
    res.writeHead(503, { 'content-type': 'application/json; charset=utf-8' })
    res.end(JSON.stringify({ code: 'NYALA_ERR_MODULE_UNAVAILABLE', module, generation: number }))
    return
  }
  // one request at a time per proxy connection: the client's address for `request.ip`
  if (typeof remote === 'string')
    Object.defineProperty(req.socket, 'remoteAddress', { value: remote, configurable: true })
  app.routing(req, res)
}

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

port.on('message', (msg: ToThread) => {
  if (msg.t === 'ping') post({ t: 'pong' })
  else if (msg.t === 'start')
    start(msg).catch((err: unknown) => post({ t: 'failed', id: msg.id, error: errorToWire(err) }))
  else if (msg.t === 'stop') stop(msg).catch(() => post({ t: 'stopped', id: msg.id }))
})

const server = createServer(serve)
// the host's proxy keeps its connections: none is closed under it while idle
server.keepAliveTimeout = 0
server.requestTimeout = 0
server.listen(data.socketPath, () => post({ t: 'ready', ...lowerPriority(options.isolation.nice) }))
