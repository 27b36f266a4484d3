import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { nyalaError } from '../errors.js'
import { rejectUpgrade } from '../http/upgrade-dispatch.js'
import { liveOwners, ownerStopped } from '../runtime/code-owner.js'
import { Generation, type GenerationInit } from '../runtime/generation.js'
import { forgetCode } from '../runtime/running-code.js'
import type { ModuleThread } from './module-thread.js'

/**
 * A generation of a module that runs in its own thread (isolation=thread),
 * as the serving thread sees it: the dispatcher routes to it and counts its
 * requests in flight as for any generation (so a reload drains it alike),
 * and its `app` hands each request to the generation of the same number in
 * the module's thread (thread-proxy.ts). Its code, context and Fastify
 * instance live in that thread only.
 */
export class IsolatedGeneration extends Generation {
  readonly thread: ModuleThread
  /** In the thread: how long reading the bundle, and starting the generation from it, took (ms). */
  threadTimes = { readMs: 0, startMs: 0 }
  readonly #config: Readonly<Record<string, string>>

  /** Where else the bundle may be by the time the thread reads it (the module's file in `modules/`). */
  readonly #elsewhere: string

  constructor(init: GenerationInit, thread: ModuleThread, elsewhere: string) {
    super(init)
    this.thread = thread
    this.#config = init.config
    this.#elsewhere = elsewhere
  }

  override async start(): Promise<void> {
    const t0 = performance.now()
    this.state = 'starting'
    const { bundle } = this
    try {
      this.threadTimes = await this.thread.startGeneration(
        this.number,
        [bundle.file, this.#elsewhere],
        bundle.kind,
        bundle.hash,
        this.#config,
      )
    } catch (err) {
      this.state = 'failed'
      forgetCode(this.codeId)
      // a thread started for this generation alone is not kept idle
      await this.thread.closeIfIdle()
      throw err
    }
    // the dispatcher only calls `routing`
    this.app = { routing: this.thread.proxy.routing(this.number) } as unknown as FastifyInstance
    this.state = 'running'
    liveOwners.add(this.owner)
    this.startedAt = Date.now()
    this.startMs = performance.now() - t0
  }

  override async stop(): Promise<unknown> {
    if (this.state !== 'running') return undefined
    this.state = 'stopping'
    await this.thread.stopGeneration(this.number)
    this.app = undefined
    ownerStopped(this.owner)
    forgetCode(this.codeId)
    this.state = 'stopped'
    return undefined
  }

  /** `ctx.previous` is handed over inside the module's thread, from generation to generation. */
  override async handoff(): Promise<unknown> {
    return undefined
  }

  /** Nothing crosses threads: an isolated module provides nothing to others (none may depend on it). */
  override get provided(): unknown {
    return undefined
  }

  /** WebSockets to an isolated module are refused in this version (docs/modules.md). */
  override upgrade(_req: IncomingMessage, socket: Duplex, _head: Buffer): boolean {
    rejectUpgrade(socket, nyalaError('NYALA_ERR_ISOLATED_UPGRADE', { module: this.name }))
    return true
  }
}
