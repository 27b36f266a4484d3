import { rm } from 'node:fs/promises'
import path from 'node:path'
import { Worker } from 'node:worker_threads'
import { errorFromWire } from '../bundle/bundle-transfer.js'
import type { HostOptions } from '../config/host-options.js'
import { isNyalaError, type NyalaError, nyalaError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { FromThread, ThreadData, ToThread } from './protocol.js'
import type { ResponseMessage } from './protocol-requests.js'
import { ProxiedRequests } from './thread-proxy.js'

const threadUrl = new URL('./thread-main.js', import.meta.url)

export type ThreadState = 'starting' | 'running' | 'stalled' | 'exited'

/** What a module thread tells its owner (the host). */
export interface ThreadEvents {
  /**
   * Module code in the thread crashed (`generation`: the one it was
   * attributed to), or the thread itself ended or stalled (`error` is then
   * a NyalaError, `generation` its newest live one).
   */
  crashed(
    thread: ModuleThread,
    error: Error,
    origin: 'uncaughtException' | 'unhandledRejection',
    generation: number | null,
  ): void
  /** The thread is gone; a later generation of the module starts a new one. */
  ended(thread: ModuleThread): void
}

/**
 * The serving thread's handle on one module's worker thread: starts it,
 * asks it to start and stop generations, pings it (a thread that does not
 * answer within `isolation.thread.stall.ms` is terminated) and reports its
 * crashes. One per isolated module, kept across the module's generations.
 */
export class ModuleThread {
  readonly module: string
  /** The requests to the module, handed to the thread and answered from it. */
  readonly proxy: ProxiedRequests
  state: ThreadState = 'starting'
  /** The Linux thread id and its nice value, once it runs. */
  tid: number | null = null
  nice: number | null = null
  /** The Node thread id (the worker's `threadId`). */
  readonly threadId: number
  readonly #worker: Worker
  readonly #events: ThreadEvents
  readonly #log: Logger
  readonly #options: HostOptions
  readonly #ready: Promise<void>
  readonly #pending = new Map<number, { resolve: (m: FromThread) => void; reject: (e: Error) => void }>()
  /** Generations started in it and not stopped. */
  readonly #live = new Set<number>()
  #ids = 0
  #lastPong = performance.now()
  /** Generations being started in the thread (their load and register): the stall limit waits for them. */
  #starts = 0
  readonly #pinger: NodeJS.Timeout
  #closing = false
  #exitError: NyalaError | undefined

  constructor(module: string, options: HostOptions, log: Logger, events: ThreadEvents) {
    this.module = module
    this.#options = options
    this.#log = log
    this.#events = events
    const heap = options.isolation.heapMb
    const data: ThreadData = { module, options }
    this.#worker = new Worker(threadUrl, {
      workerData: data,
      execArgv: [],
      ...(heap > 0 ? { resourceLimits: { maxOldGenerationSizeMb: heap } } : {}),
    })
    this.threadId = this.#worker.threadId
    const worker = this.#worker
    this.proxy = new ProxiedRequests(module, (message, transfer) =>
      worker.postMessage(message, transfer ?? []),
    )
    this.#ready = new Promise((resolve, reject) => {
      this.#pending.set(0, { resolve: () => resolve(), reject })
    })
    this.#ready.catch(() => {})
    this.#worker.on('message', (m: FromThread | ResponseMessage) => this.#message(m))
    this.#worker.on('error', (err: Error) => {
      this.#exitError ??= nyalaError('NYALA_ERR_MODULE_THREAD_EXITED', {
        module,
        generation: this.newest ?? 0,
        reason: err.message,
      })
    })
    this.#worker.on('exit', (code) => this.#exited(code))
    const stallMs = options.isolation.stallMs
    this.#pinger = setInterval(() => this.#ping(stallMs), Math.max(50, Math.min(1000, stallMs / 4)))
    this.#pinger.unref()
  }

  /** The newest generation started in the thread and not stopped. */
  get newest(): number | undefined {
    let n: number | undefined
    for (const g of this.#live) if (n === undefined || g > n) n = g
    return n
  }

  /** Starts generation `generation` from the first of `files` there in the thread; rejects with why it did not. */
  async startGeneration(
    generation: number,
    files: readonly string[],
    kind: 'zip' | 'directory',
    hash: string,
    config: Readonly<Record<string, string>>,
  ): Promise<{ readMs: number; startMs: number }> {
    await this.#ready
    // a module's load and register may hold the thread longer than the stall limit on a busy
    // machine (its top level is synchronous); module.start.timeout bounds them instead (#ping)
    this.#starts++
    const reply = await this.#ask({ t: 'start', id: 0, generation, files, kind, hash, config }).finally(
      () => this.#starts--,
    )
    if (reply.t === 'failed') {
      const err = errorFromWire(reply.error)
      throw isNyalaError(err)
        ? err
        : nyalaError('NYALA_ERR_MODULE_REGISTER_FAILED', { module: this.module, reason: err.message }, err)
    }
    this.#live.add(generation)
    return reply.t === 'started'
      ? { readMs: reply.readMs, startMs: reply.startMs }
      : { readMs: 0, startMs: 0 }
  }

  /** Stops a generation in the thread; the last one to stop ends the thread. */
  async stopGeneration(generation: number): Promise<void> {
    if (this.state !== 'exited') await this.#ask({ t: 'stop', id: 0, generation }).catch(() => {})
    this.#live.delete(generation)
    if (this.#live.size === 0) await this.close()
  }

  /** Ends the thread when no generation runs in it (a first start that failed leaves none). */
  async closeIfIdle(): Promise<void> {
    if (this.#live.size === 0) await this.close()
  }

  /** Ends the thread (its generations are stopped first by the caller, or lost with it). */
  async close(): Promise<void> {
    if (this.state === 'exited') return
    this.#closing = true
    clearInterval(this.#pinger)
    await this.#worker.terminate()
  }

  #ask(message: ToThread & { id: number }): Promise<FromThread> {
    if (this.state === 'exited')
      return Promise.reject(this.#exitError ?? this.#ended('it had ended before the request'))
    const id = ++this.#ids
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#worker.postMessage({ ...message, id })
    })
  }

  #message(m: FromThread | ResponseMessage): void {
    this.#lastPong = performance.now()
    if (m.t === 'pong') return
    if (m.t === 'sh' || m.t === 'sb' || m.t === 'sx' || m.t === 'bp' || m.t === 'br') {
      this.proxy.handle(m)
      return
    }
    if (m.t === 'ready') {
      this.state = 'running'
      this.tid = m.tid
      this.nice = m.nice
      this.#settle(0, m)
      return
    }
    if (m.t === 'crash') {
      const err = new Error(m.message)
      err.stack = m.stack
      this.#events.crashed(this, err, m.origin, m.generation)
      return
    }
    this.#settle(m.id, m)
  }

  #settle(id: number, m: FromThread): void {
    const waiter = this.#pending.get(id)
    this.#pending.delete(id)
    waiter?.resolve(m)
  }

  #ping(stallMs: number): void {
    if (this.state === 'exited' || this.state === 'stalled') return
    // loading the host's code into a new thread, and a generation's load and register in it, take
    // a while on a busy machine: while either runs, only module.start.timeout bounds it
    const starting = this.state === 'starting' || this.#starts > 0
    const limit = starting ? Math.max(stallMs, this.#options.moduleStartTimeoutMs) : stallMs
    if (performance.now() - this.#lastPong > limit) {
      this.state = 'stalled'
      const error = nyalaError('NYALA_ERR_MODULE_THREAD_STALLED', {
        module: this.module,
        generation: this.newest ?? 0,
        limit,
      })
      this.#exitError = error
      this.#log.error({ ...error.toJSON(), thread: this.threadId }, error.message)
      void this.#worker.terminate()
      return
    }
    this.#worker.postMessage({ t: 'ping' } satisfies ToThread)
  }

  #ended(reason: string): NyalaError {
    return nyalaError('NYALA_ERR_MODULE_THREAD_EXITED', {
      module: this.module,
      generation: this.newest ?? 0,
      reason,
    })
  }

  #exited(code: number): void {
    const threadId = this.threadId
    this.state = 'exited'
    clearInterval(this.#pinger)
    const error = this.#exitError ?? this.#ended(`exit code ${code}`)
    this.#exitError = error
    for (const waiter of this.#pending.values()) waiter.reject(error)
    this.#pending.clear()
    this.proxy.failAll(error.message)
    // its lease named what only its generations used
    void rm(path.join(this.#options.cacheDir, '.leases', `${process.pid}-${threadId}`), { force: true })
    if (!this.#closing) {
      if (error.code === 'NYALA_ERR_MODULE_THREAD_EXITED')
        this.#log.error({ ...error.toJSON(), thread: threadId }, error.message)
      this.#events.crashed(this, error, 'uncaughtException', this.newest ?? null)
    }
    this.#events.ended(this)
  }
}
