import { Worker } from 'node:worker_threads'
import {
  type BundleTransfer,
  bundleFromTransfer,
  errorFromWire,
  type WireError,
} from '../bundle/bundle-transfer.js'
import type { Bundle } from '../bundle/open-bundle.js'
import type { TrustPolicy } from '../bundle/trust-store.js'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { isCacheableScript, rememberDigests, storeCodeCache } from './code-cache.js'
import { rememberSyntax } from './load-module.js'
import { type CompiledName, compiledAs } from './module-location.js'
import { cachedKeys, remember, type Transformed, transformStats } from './transform.js'

/** What the worker is asked: one bundle to read, open and (optionally) syntax-check, or a ping. */
export interface ReadRequest {
  readonly id: number
  /** Only answer (an empty `ok: false` reply) once the worker is ready: `warm`. */
  readonly ping?: true
  readonly file: string
  readonly directory: boolean
  readonly maxBytes: number
  readonly maxEntries?: number | undefined
  readonly maxNameBytes?: number | undefined
  readonly name?: string | undefined
  /** Leave the files out of the answer when the module runs in a thread of its own. */
  readonly leaveIsolated?: boolean | undefined
  /** The operator's `isolation.thread.modules` names the module. */
  readonly isolated?: boolean | undefined
  readonly checkSyntax: boolean
  /** Keys of the transforms the reading thread holds: the worker does not make them again. */
  readonly knownTransforms?: readonly string[] | undefined
  readonly trust?: TrustPolicy | undefined
}

export type ReadReply =
  | {
      readonly id: number
      readonly ok: true
      readonly bundle: BundleTransfer
      /** The zip file's bytes (not for a directory). */
      readonly data: ArrayBuffer | undefined
      /** The syntax check's verdict: an error, or `undefined` when every script compiled. */
      readonly syntax: WireError | undefined
      /** ES module and TypeScript files the check transformed, for the loading thread's cache. */
      readonly transformed: readonly Transformed[]
      /** Digests of the bundle's CommonJS scripts, its code caches' keys (code-cache.ts). */
      readonly digests: { readonly entries: readonly string[]; readonly values: readonly string[] }
      /** Entries taken over from the module's last read, not inflated again (zip-reuse.ts). */
      readonly reused: number
    }
  | {
      readonly id: number
      readonly ok: false
      readonly error: WireError
      readonly bytesRead: number | undefined
    }

/**
 * A bundle to read ahead (start-up): the worker reads and inflates it only to
 * keep it as the module's last read (zip-reuse.ts), so the module's first
 * reload takes its unchanged entries over as later reloads do. Nothing is
 * sent back but whether it was kept.
 */
export interface PrimeRequest {
  readonly id: number
  readonly prime: {
    readonly file: string
    readonly maxBytes: number
    readonly maxEntries?: number | undefined
    readonly maxNameBytes?: number | undefined
  }
}

export interface PrimeReply {
  readonly id: number
  readonly primed: PrimeResult
}

/** What a read ahead left. */
export interface PrimeResult {
  /** The read is kept as the module's last read. */
  readonly kept: boolean
  /** Bytes the reader keeps in all after it (zip bytes and inflated entries). */
  readonly held: number
  /** It did not fit beside what is kept: reading more ahead is wasted. */
  readonly full?: boolean | undefined
  /** Why it was not kept: the bound is reached, the module was read meanwhile, or the error. */
  readonly reason?: string | undefined
}

/**
 * Asks the worker to end itself (`close`): it exits between two messages, never inside a read.
 * Terminated from outside in the middle of Node's zlib (between a stream's creation and its
 * init), a worker aborts the whole process as its environment is torn down ("close before
 * init", node_zlib.cc; seen once in the test suite on Node 20.20).
 */
export interface StopRequest {
  readonly stop: true
}

/** How long `close` waits for the worker to end itself before it is terminated. @default 2000 */
export const stopWaitMs = 2000

/** Scripts to make code caches of (code-cache.ts): their code names and bytes laid end to end. */
export interface CodeCacheRequest {
  readonly id: number
  readonly codeCache: {
    readonly names: readonly CompiledName[]
    readonly lengths: readonly number[]
    readonly contents: ArrayBuffer
  }
}

/** The caches made, by cache key, laid end to end in one transferred buffer. */
export interface CodeCacheReply {
  readonly id: number
  readonly codeCache: {
    readonly keys: readonly string[]
    readonly lengths: readonly number[]
    readonly contents: ArrayBuffer
  }
}

export interface ReadOptions {
  /** A directory bundle (read entry by entry) rather than a zip file. @default false */
  readonly directory?: boolean
  /** Inflated size limit (bundle.max.bytes). */
  readonly maxBytes: number
  /** Entries in a zip's central directory. @default 200000 */
  readonly maxEntries?: number | undefined
  /** Bytes of one entry name in a zip. @default 4096 */
  readonly maxNameBytes?: number | undefined
  /** Module name to use instead of the one from the file name (a `.tmp` or staged copy). */
  readonly name?: string | undefined
  /**
   * For the serving thread's reload path: when the module runs in a thread of
   * its own (`isolated`, or its manifest says `isolation=thread`), its files
   * stay on the reader's thread, checked, and the bundle comes back without
   * them (`contentsOmitted`): that thread reads them itself. @default false
   */
  readonly leaveIsolated?: boolean | undefined
  /** The operator's `isolation.thread.modules` names the module. @default false */
  readonly isolated?: boolean | undefined
  /** Also compile the bundle's own scripts; the verdict is what `checkSyntax` then reports. @default true */
  readonly checkSyntax?: boolean
  /** Signatures to require and keys to trust, checked before the syntax check compiles anything. */
  readonly trust?: TrustPolicy | undefined
}

export type ReadResult =
  | {
      readonly ok: true
      readonly bundle: Bundle
      readonly data: Buffer | undefined
      /** Entries taken over from the module's last read, stored the same (zip-reuse.ts). */
      readonly reused: number
    }
  | {
      readonly ok: false
      /** A NyalaError, or a file system error with its errno `code` (ENOENT: the file vanished). */
      readonly error: NyalaError | NodeJS.ErrnoException
      /** Bytes the file had when it was read, if it was: 0 is a file still being created. */
      readonly bytesRead: number | undefined
    }

const workerUrl = new URL('./bundle-worker.js', import.meta.url)

/**
 * Reads bundles on one long-lived worker thread: reading the file, inflating
 * every entry, hashing (the bundle, and each script for its code cache) and
 * syntax-checking a 3,000-file bundle takes hundreds of milliseconds of CPU
 * that would otherwise stall every module's requests.
 *
 * The worker starts on the first read (a host that never reloads never starts
 * it), holds the process open only while a read is pending (it is unref'd when
 * idle), and is started anew on the next read if it dies; reads pending when it
 * died fail with NYALA_ERR_BUNDLE_READ. Reads run concurrently in the worker.
 */
export class BundleReader {
  #worker: Worker | undefined
  #ids = 0
  readonly #pending = new Map<number, { file: string; resolve: (r: ReadResult) => void }>()
  readonly #caching = new Map<number, (stored: number) => void>()
  readonly #priming = new Map<number, (result: PrimeResult) => void>()

  /** Reads, opens and checks one bundle off the calling thread. Never rejects. */
  read(file: string, opts: ReadOptions): Promise<ReadResult> {
    let worker: Worker
    try {
      worker = this.#ensure()
    } catch (err) {
      const reason = `cannot start the bundle reader thread: ${reasonOf(err)}`
      return Promise.resolve({
        ok: false,
        error: nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: file, reason }, err),
        bytesRead: undefined,
      })
    }
    const id = ++this.#ids
    const req: ReadRequest = {
      id,
      file,
      directory: opts.directory ?? false,
      maxBytes: opts.maxBytes,
      maxEntries: opts.maxEntries,
      maxNameBytes: opts.maxNameBytes,
      name: opts.name,
      leaveIsolated: opts.leaveIsolated,
      isolated: opts.isolated,
      checkSyntax: opts.checkSyntax ?? true,
      knownTransforms: (opts.checkSyntax ?? true) ? cachedKeys() : undefined,
      trust: opts.trust,
    }
    return new Promise((resolve) => {
      if (this.#busy === 0) worker.ref()
      this.#pending.set(id, { file, resolve })
      worker.postMessage(req)
    })
  }

  /**
   * Makes code caches of `entries` of `bundle` (CommonJS scripts a generation
   * compiled from their source) on the reader's thread, and keeps them for the
   * next compile of the same bytes under the same name (code-cache.ts). This
   * thread only copies the scripts' bytes into one buffer. Resolves with the
   * number stored; never rejects (a cache is an optimisation: none is made if
   * the thread cannot start).
   */
  makeCodeCaches(bundle: Bundle, entries: readonly string[]): Promise<number> {
    // only these get a digest when a bundle is read, so only these can find their cache
    const wanted = entries.filter((e) => isCacheableScript(e) && bundle.files.has(e))
    if (wanted.length === 0) return Promise.resolve(0)
    let worker: Worker
    try {
      worker = this.#ensure()
    } catch {
      return Promise.resolve(0)
    }
    const lengths = wanted.map((e) => bundle.files.get(e)!.length)
    // one buffer of its own, transferred: views of the bundle's buffer would each clone all of it
    const contents = Buffer.allocUnsafeSlow(lengths.reduce((n, l) => n + l, 0))
    let at = 0
    for (const entry of wanted) at += bundle.files.get(entry)!.copy(contents, at)
    const id = ++this.#ids
    const req: CodeCacheRequest = {
      id,
      codeCache: {
        names: wanted.map((e) => compiledAs(bundle, e)),
        lengths,
        contents: contents.buffer as ArrayBuffer,
      },
    }
    return new Promise((resolve) => {
      if (this.#busy === 0) worker.ref()
      this.#caching.set(id, resolve)
      worker.postMessage(req, [req.codeCache.contents])
    })
  }

  /**
   * Reads `file` ahead on the reader's thread and keeps it as its module's last
   * read, if it fits beside what is kept without dropping anything. For a
   * host's start-up: it opened its bundles on its own thread, so without this
   * the first reload of each module inflated every entry again. Never rejects.
   */
  prime(
    file: string,
    opts: Pick<ReadOptions, 'maxBytes' | 'maxEntries' | 'maxNameBytes'>,
  ): Promise<PrimeResult> {
    let worker: Worker
    try {
      worker = this.#ensure()
    } catch (err) {
      return Promise.resolve({ kept: false, held: 0, reason: reasonOf(err) })
    }
    const id = ++this.#ids
    const req: PrimeRequest = {
      id,
      prime: { file, maxBytes: opts.maxBytes, maxEntries: opts.maxEntries, maxNameBytes: opts.maxNameBytes },
    }
    return new Promise((resolve) => {
      if (this.#busy === 0) worker.ref()
      this.#priming.set(id, resolve)
      worker.postMessage(req)
    })
  }

  get #busy(): number {
    return this.#pending.size + this.#caching.size + this.#priming.size
  }

  /**
   * Starts the worker now and resolves once it answers: a host pays the
   * thread's start (a few hundred milliseconds of CPU on a busy machine) while
   * it starts up, not during its first reload under traffic.
   */
  async warm(): Promise<void> {
    let worker: Worker
    try {
      worker = this.#ensure()
    } catch {
      return // the first read reports why
    }
    const id = ++this.#ids
    await new Promise<void>((resolve) => {
      if (this.#busy === 0) worker.ref()
      this.#pending.set(id, { file: '', resolve: () => resolve() })
      worker.postMessage({ id, ping: true, file: '', directory: false, maxBytes: 0, checkSyntax: false })
    })
  }

  /**
   * Stops the worker; a later read starts a new one. Pending reads fail at once; the worker
   * ends itself after the message it is on (StopRequest), and is terminated only if that
   * takes over `stopWaitMs`.
   */
  async close(): Promise<void> {
    const worker = this.#worker
    this.#worker = undefined
    this.#failAll('the bundle reader was closed')
    if (!worker) return
    // an idle worker is unref'd, and an unref'd worker does not hold the event loop: a process
    // with nothing else left (a successor refusing a handover) would end with code 0 inside
    // this await, before it could log why and exit 1
    worker.ref()
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.postMessage({ stop: true } satisfies StopRequest)
    let timer: NodeJS.Timeout | undefined
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(resolve, stopWaitMs, 'late')
    })
    if ((await Promise.race([exited, late])) === 'late') await worker.terminate()
    clearTimeout(timer)
  }

  #ensure(): Worker {
    if (this.#worker) return this.#worker
    // none of the host's own flags: the worker runs only our code, and some flags (--input-type,
    // say) are refused by workers
    const worker = new Worker(workerUrl, { execArgv: [] })
    worker.unref()
    worker.on('message', (reply: ReadReply | CodeCacheReply | PrimeReply) => {
      if ('codeCache' in reply) this.#stored(worker, reply)
      else if ('primed' in reply) this.#primed(worker, reply)
      else this.#settle(worker, reply)
    })
    worker.on('error', (err: Error) => this.#died(worker, `the bundle reader thread failed: ${err.message}`))
    worker.on('exit', (code: number) => this.#died(worker, `the bundle reader thread exited (code ${code})`))
    this.#worker = worker
    return worker
  }

  #stored(worker: Worker, reply: CodeCacheReply): void {
    const resolve = this.#caching.get(reply.id)
    if (!resolve) return
    this.#caching.delete(reply.id)
    this.#release(worker)
    const { keys, lengths, contents } = reply.codeCache
    let at = 0
    for (const [i, key] of keys.entries()) {
      const length = lengths[i] ?? 0
      storeCodeCache(key, new Uint8Array(contents, at, length))
      at += length
    }
    resolve(keys.length)
  }

  #primed(worker: Worker, reply: PrimeReply): void {
    const resolve = this.#priming.get(reply.id)
    if (!resolve) return
    this.#priming.delete(reply.id)
    this.#release(worker)
    resolve(reply.primed)
  }

  #settle(worker: Worker, reply: ReadReply): void {
    const waiting = this.#pending.get(reply.id)
    if (!waiting) return
    this.#pending.delete(reply.id)
    this.#release(worker)
    if (!reply.ok) {
      waiting.resolve({ ok: false, error: errorFromWire(reply.error), bytesRead: reply.bytesRead })
      return
    }
    const bundle = bundleFromTransfer(reply.bundle)
    rememberDigests(bundle, reply.digests.entries, reply.digests.values)
    for (const t of reply.transformed) remember(t)
    transformStats.transformedOffThread += reply.transformed.length
    rememberSyntax(
      bundle,
      reply.syntax === undefined ? undefined : (errorFromWire(reply.syntax) as NyalaError),
    )
    waiting.resolve({
      ok: true,
      bundle,
      data: reply.data ? Buffer.from(reply.data) : undefined,
      reused: reply.reused,
    })
  }

  /** Lets the process exit while nothing is asked of the current worker. */
  #release(worker: Worker): void {
    if (this.#busy === 0 && worker === this.#worker) worker.unref()
  }

  #died(worker: Worker, reason: string): void {
    if (this.#worker !== worker) return
    this.#worker = undefined
    this.#failAll(reason)
  }

  #failAll(reason: string): void {
    for (const [id, resolve] of this.#caching) {
      this.#caching.delete(id)
      resolve(0)
    }
    for (const [id, resolve] of this.#priming) {
      this.#priming.delete(id)
      resolve({ kept: false, held: 0, reason })
    }
    for (const [id, { file, resolve }] of this.#pending) {
      this.#pending.delete(id)
      resolve({
        ok: false,
        error: nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: file, reason }),
        bytesRead: undefined,
      })
    }
  }
}

/** The process's bundle reader: one worker for every reload of every host in the process. */
export const bundleReader = new BundleReader()
