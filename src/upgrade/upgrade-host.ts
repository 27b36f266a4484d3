import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { HostOptions } from '../config/host-options.js'
import type { Supervisor } from '../supervise/supervisor.js'

/**
 * What the process around a host (start, signals, handover, a host crash's
 * successor) needs of it; src/host.ts implements it. Owned here, so upgrade/
 * depends on this shape, not on the host's class (docs/architecture.md).
 */
export interface UpgradeHost {
  readonly options: HostOptions
  /** The modules by name: a successor refuses a handover while one the old process runs is down here. */
  readonly modules: ReadonlyMap<string, UpgradeModule>
  /** The listeners by name (`http`, `admin`): a handover passes every one to the successor. */
  readonly servers: ReadonlyMap<string, Server>
  readonly address: AddressInfo | undefined
  /** Module code's crashes go to it (the process's crash handlers). */
  readonly supervisor: Supervisor
  /** A host crash stops reloading before a successor is started. */
  readonly reloader: { close(): Promise<void> }
  /** Loads the modules; a successor does it before it asks for the listeners. */
  prepare(): Promise<void>
  /**
   * Loads (once) and listens; `inherited` maps a listener name to a handed-over descriptor.
   * `beforeAccepting` runs once everything that can fail is done, just before the inherited
   * listeners accept: the successor acknowledges there and waits for the old instance to stop.
   */
  start(
    inherited?: ReadonlyMap<string, number>,
    beforeAccepting?: (adopted: readonly string[]) => Promise<void>,
  ): Promise<AddressInfo>
  close(graceMs?: number): Promise<void>
  /**
   * Removes the admin URL file it wrote (`run/admin.url`), if it still holds its URL: called
   * when the process ends without handing over (a successor writes the same URL).
   */
  forgetAdminUrl(): void
}

/** A module as a handover looks at it. */
export interface UpgradeModule {
  readonly name: string
  readonly state: string
  readonly error?: { readonly message: string } | undefined
}
