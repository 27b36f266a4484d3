import type { AddressInfo } from 'node:net'
import type { HostOptions } from '../config/host-options.js'
import type { Logger } from '../logger.js'
import type { ReloadResult } from '../reload/change.js'
import type { ModuleRuntime } from '../reload/module-runtime.js'
import type { ReloadEvents } from '../reload/reload-events.js'
import type { ModuleRecord } from '../runtime/module-record.js'

/**
 * What the admin API needs of the host (src/host.ts implements it). Owned
 * here, not taken from the host's class, so http/ never imports host.ts,
 * which imports http/ (docs/architecture.md).
 */
export interface AdminHost {
  readonly options: HostOptions
  readonly log: Logger
  readonly modules: ReadonlyMap<string, ModuleRecord>
  /** Worker processes answer `GET /workers` themselves; a single process has none. */
  readonly runtime: Pick<ModuleRuntime, 'workers' | 'metrics' | 'stats'>
  /** The HTTP listener's address once it listens (`GET /ready`). */
  readonly address: AddressInfo | undefined
  /** The modules as plain objects, in start order. */
  describe(): Record<string, unknown>[]
}

/**
 * What the admin API asks of the reloader (src/reload/reloader.ts), handed in
 * at run time by the host: reloads, reload registration and the event stream.
 */
export interface AdminReloader {
  readonly events: ReloadEvents
  readonly selection: {
    isUnregistered(name: string): boolean
    register(name: string): void
    unregister(name: string): void
  }
  reloadModule(name: string, force?: boolean): Promise<ReloadResult>
  rescan(trigger?: string): Promise<ReloadResult>
}
