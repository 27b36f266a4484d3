import { EventEmitter } from 'node:events'
import type { RuntimeTiming } from './module-runtime.js'

/** One phase of one reload, as the admin API's `GET /events` streams it. */
export interface ReloadEvent {
  readonly id: number
  readonly phase:
    | 'start'
    | 'unchanged'
    | 'blocked'
    | 'started'
    | 'swapped'
    | 'drained'
    | 'failed'
    | 'newer-source'
    /** A module's code crashed (id 0: not a reload); `action` says what the supervisor did. */
    | 'crashed'
    /**
     * A `.tmp` or staged file set aside (id 0: not a reload) because a newer file of its module
     * arrived on another deploy path; `files` names it, `error` is NYALA_ERR_DEPLOY_SUPERSEDED.
     */
    | 'superseded'
  readonly trigger: string
  readonly modules: readonly string[]
  /**
   * On `swapped`: the modules whose own bundle changed, or that were named for a forced reload;
   * `modules` adds the dependents rebuilt with them.
   */
  readonly changed?: readonly string[]
  /**
   * On `start` (and `superseded`): the file each module's new content is read from (a `.tmp`, a
   * staged file, or the bundle itself), as the host names it. A client that placed a file
   * (`nyala deploy`, the console) takes as its verdict only the reload whose start names it: a
   * reload of an older file of the same module, ending meanwhile, is not its answer.
   */
  readonly files?: Readonly<Record<string, string>>
  /**
   * On `start`: the sha256 of each module's new content as the host read it from `files` (absent
   * for a file that could not be opened). A path alone does not tell two deploys apart: another
   * copy of the module can land under the same name while `nyala deploy` writes its own.
   */
  readonly hashes?: Readonly<Record<string, string>>
  readonly generations?: Readonly<Record<string, number>>
  readonly ms?: number
  readonly module?: string
  readonly action?: string
  readonly error?: { readonly code: string; readonly message: string; readonly at: string }
  /** With worker processes (`swapped`): each worker's prepare time and swap instant. */
  readonly workers?: readonly RuntimeTiming[]
  /** With worker processes (`swapped`): ms between the first and the last worker's swap. */
  readonly skewMs?: number | undefined
}

/** Reload phases for listeners (the SSE stream, metrics); never throws into the reload. */
export class ReloadEvents {
  readonly #emitter = new EventEmitter()

  constructor() {
    // every open `GET /events` stream is one listener
    this.#emitter.setMaxListeners(0)
  }

  emit(event: ReloadEvent): void {
    const stamped = { ...event, at: new Date().toISOString() }
    for (const fn of this.#emitter.listeners('event')) {
      try {
        ;(fn as (e: ReloadEvent) => void)(stamped)
      } catch {
        // a broken listener must not break a reload
      }
    }
  }

  on(fn: (event: ReloadEvent & { at: string }) => void): () => void {
    this.#emitter.on('event', fn)
    return () => this.#emitter.off('event', fn)
  }
}
