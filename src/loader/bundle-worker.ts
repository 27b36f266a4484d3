/**
 * The bundle reader's worker thread (see bundle-reader.ts): reads a bundle
 * file, opens it with `openBundle` (the one implementation of inflating,
 * hashing and every safety rule) and syntax-checks its scripts (transforming
 * its ES module and TypeScript files with esbuild), so none of that
 * runs on the thread that serves requests. Answers each request with the
 * bundle in transfer form, or with the error it was refused with.
 */
import { readlinkSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { getPriority, setPriority } from 'node:os'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { parentPort } from 'node:worker_threads'
import { bundleToTransfer, errorToWire } from '../bundle/bundle-transfer.js'
import { moduleNameOf } from '../bundle/module-name.js'
import { openBundle } from '../bundle/open-bundle.js'
import type { InflatedEntry } from '../bundle/zip-reuse.js'
import { ZipReuse } from '../bundle/zip-reuse.js'
import type {
  CodeCacheReply,
  CodeCacheRequest,
  PrimeReply,
  PrimeRequest,
  ReadReply,
  ReadRequest,
  StopRequest,
} from './bundle-reader.js'
import { codeCacheKey, digestsOf, fileDigest } from './code-cache.js'
import { compiledKeyName, produceCodeCache } from './compile-module.js'
import { checkSyntaxOffThread } from './syntax-check.js'
import { setTransformCacheLimit, type Transformed } from './transform.js'

const port = parentPort
if (!port) throw new Error('bundle-worker.js runs as a worker thread only')
lowerPriority()
// the loading thread keeps the transforms this thread makes
setTransformCacheLimit(0)
/** Each module's last read entries: a reload inflates only the entries that changed. */
const lastReads = new ZipReuse()

port.on('message', (req: ReadRequest | CodeCacheRequest | PrimeRequest | StopRequest) => {
  // between two messages no inflate is under way: the thread ends here, not inside zlib
  if ('stop' in req) process.exit(0)
  if ('codeCache' in req) {
    void makeCodeCaches(req).then((reply) => port.postMessage(reply, [reply.codeCache.contents]))
    return
  }
  if ('prime' in req) {
    void prime(req).then((reply) => port.postMessage(reply))
    return
  }
  if (req.ping) {
    port.postMessage({
      id: req.id,
      ok: false,
      error: { nyala: false, message: 'pong' },
      bytesRead: undefined,
    })
    return
  }
  void handle(req).then((reply) => {
    const transfer: ArrayBuffer[] = []
    if (reply.ok) {
      transfer.push(reply.bundle.contents)
      if (reply.data) transfer.push(reply.data)
    }
    port.postMessage(reply, transfer)
  })
})

async function handle(req: ReadRequest): Promise<ReadReply> {
  let data: Buffer | undefined
  try {
    if (!req.directory) data = await readFile(req.file)
    const module = req.name ?? moduleNameOf(req.file, Boolean(req.directory))
    const previous = module ? lastReads.get(module) : undefined
    // the same bytes as the last read: its own buffer goes in, which readZip takes whole
    if (data && previous && previous.data.length === data.length && previous.data.equals(data))
      data = previous.data
    const record = new Map<string, InflatedEntry>()
    const bundle = await openBundle(req.file, {
      reuse: { previous, record },
      maxBytes: req.maxBytes,
      ...(req.maxEntries === undefined ? {} : { maxEntries: req.maxEntries }),
      ...(req.maxNameBytes === undefined ? {} : { maxNameBytes: req.maxNameBytes }),
      ...(req.name === undefined ? {} : { name: req.name }),
      ...(data ? { data } : {}),
      trust: req.trust,
    })
    if (module && data && record.size > 0) lastReads.set(module, { data, hash: bundle.hash, entries: record })
    let syntax: ReturnType<typeof errorToWire> | undefined
    let transformed: Transformed[] = []
    if (req.checkSyntax) {
      const verdict = await checkSyntaxOffThread(bundle, new Set(req.knownTransforms))
      if (verdict.error) syntax = errorToWire(verdict.error)
      transformed = verdict.transformed
    }
    let reused = 0
    for (const [entry, e] of record) if (previous?.entries.get(entry)?.content === e.content) reused++
    // an isolated module's thread reads its files itself: the serving thread gets none of them,
    // nor their digests and transforms (the thread makes its own)
    const contents = !(req.leaveIsolated && (req.isolated || bundle.manifest.isolation === 'thread'))
    return {
      id: req.id,
      ok: true,
      bundle: bundleToTransfer(bundle, contents),
      // a copy goes: the entries kept for the next read are views into these bytes, and a
      // transferred buffer is emptied on this side
      data: data ? copyOf(data) : undefined,
      reused,
      syntax,
      transformed: contents ? transformed : [],
      digests: contents ? digestsOf(bundle) : { entries: [], values: [] },
    }
  } catch (err) {
    return { id: req.id, ok: false, error: errorToWire(err), bytesRead: data?.length }
  }
}

/**
 * Reads a bundle ahead only to keep it as its module's last read (see
 * `BundleReader.prime`): no syntax check, nothing sent back. A read of the
 * module asked for meanwhile is newer and is kept instead, and a read ahead
 * never pushes out another module's.
 */
async function prime(req: PrimeRequest): Promise<PrimeReply> {
  const { file, maxBytes, maxEntries, maxNameBytes } = req.prime
  const module = moduleNameOf(file, false)
  const done = (kept: boolean, reason?: string, full?: boolean): PrimeReply => ({
    id: req.id,
    primed: { kept, held: lastReads.bytes, reason, full },
  })
  if (!module) return done(false, 'not a bundle name')
  if (lastReads.has(module)) return done(false, 'already read')
  try {
    const data = await readFile(file)
    const record = new Map<string, InflatedEntry>()
    const bundle = await openBundle(file, {
      reuse: { previous: undefined, record },
      maxBytes,
      ...(maxEntries === undefined ? {} : { maxEntries }),
      ...(maxNameBytes === undefined ? {} : { maxNameBytes }),
      data,
    })
    if (lastReads.has(module)) return done(false, 'read meanwhile')
    const kept = lastReads.setIfRoom(module, { data, hash: bundle.hash, entries: record })
    return kept ? done(true) : done(false, 'the reader keeps as much as it may', true)
  } catch (err) {
    return done(false, err instanceof Error ? err.message : String(err))
  }
}

/**
 * Code caches of the scripts a generation compiled from their source
 * (code-cache.ts), compiled again here under the name the loading thread
 * compiles them under, about 10 ms at a time so that reads asked for meanwhile
 * are not held up behind them.
 */
async function makeCodeCaches(req: CodeCacheRequest): Promise<CodeCacheReply> {
  const { names, lengths, contents } = req.codeCache
  const keys: string[] = []
  const caches: Buffer[] = []
  let at = 0
  let sliceStart = performance.now()
  for (const [i, name] of names.entries()) {
    const bytes = Buffer.from(contents, at, lengths[i] ?? 0)
    at += bytes.length
    const cache = produceCodeCache(bytes.toString('utf8'), name)
    if (cache) {
      keys.push(codeCacheKey(fileDigest(bytes), compiledKeyName(name)))
      caches.push(cache)
    }
    if (performance.now() - sliceStart >= 10) {
      await yieldToLoop()
      sliceStart = performance.now()
    }
  }
  const out = Buffer.allocUnsafeSlow(caches.reduce((n, c) => n + c.length, 0))
  let to = 0
  for (const cache of caches) to += cache.copy(out, to)
  return {
    id: req.id,
    codeCache: { keys, lengths: caches.map((c) => c.length), contents: out.buffer as ArrayBuffer },
  }
}

/** The bytes in an ArrayBuffer of their own, to transfer. */
function copyOf(data: Buffer): ArrayBuffer {
  const copy = Buffer.allocUnsafeSlow(data.length)
  data.copy(copy)
  return copy.buffer as ArrayBuffer
}

/**
 * On a machine whose cores are busy, a reload must not take CPU time from the
 * threads that serve: this thread asks the scheduler for a lower priority
 * (nice +10, Linux, where a thread has its own nice value; elsewhere nothing
 * changes). A reload then takes longer on a saturated machine, and requests do
 * not wait for it.
 */
function lowerPriority(): void {
  try {
    // /proc/thread-self -> "<pid>/task/<tid>"
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, Math.max(getPriority(tid), 10))
  } catch {
    // not Linux, or not allowed: the thread keeps the process's priority
  }
}
