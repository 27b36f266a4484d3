import type { WireError } from '../bundle/bundle-transfer.js'
import type { HostOptions } from '../config/host-options.js'

/** What a module thread is started with (its `workerData`). */
export interface ThreadData {
  readonly module: string
  readonly options: HostOptions
}

/** The host to the thread. */
export type ToThread =
  | {
      readonly t: 'start'
      readonly id: number
      readonly generation: number
      /**
       * The bundle file (or directory) the thread reads itself, then the next of these when it is
       * gone: a `.tmp` or staged file is renamed into `modules/` once a reload commits.
       */
      readonly files: readonly string[]
      readonly kind: 'zip' | 'directory'
      /** The content the host validated: the thread refuses another. */
      readonly hash: string
      readonly config: Readonly<Record<string, string>>
    }
  | { readonly t: 'stop'; readonly id: number; readonly generation: number }
  | { readonly t: 'ping' }

/** The thread to the host. */
export type FromThread =
  | { readonly t: 'ready'; readonly tid: number | null; readonly nice: number | null }
  | {
      readonly t: 'started'
      readonly id: number
      /** How long the thread took to read the bundle, and to start the generation from it. */
      readonly readMs: number
      readonly startMs: number
    }
  | { readonly t: 'failed'; readonly id: number; readonly error: WireError }
  | { readonly t: 'stopped'; readonly id: number }
  | { readonly t: 'pong' }
  | {
      readonly t: 'crash'
      readonly origin: 'uncaughtException' | 'unhandledRejection'
      /** The generation its code was attributed to, else the newest running one. */
      readonly generation: number | null
      readonly message: string
      readonly stack: string
    }
