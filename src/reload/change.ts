import type { Bundle } from '../bundle/open-bundle.js'
import type { RuntimeTiming } from './module-runtime.js'

/**
 * One module's part of a reload: new content for a module that exists
 * (`update`), a module that does not exist yet (`add`), or a bundle that is
 * gone (`remove`).
 */
export interface Change {
  readonly name: string
  readonly kind: 'update' | 'add' | 'remove'
  /** The new content, read and validated in memory (not for `remove`). */
  readonly bundle?: Bundle | undefined
  /** The file the new content was read from: the bundle itself, a `.tmp`, or a staged file. */
  readonly source?: string | undefined
  /** Where the bundle lives in `modules/` once committed (same as `source` for the default type). */
  readonly target?: string | undefined
  /** The bytes that were loaded (zip sources), so the commit moves exactly what was tested. */
  readonly data?: Buffer | undefined
  /** Rebuild even if the content did not change (admin `?force=true`). */
  readonly force?: boolean | undefined
  /**
   * Only while this generation still runs (a crash restart): a reload that replaced it while
   * the restart waited for the module's lock left nothing to restart, and the restart's bundle,
   * read before the wait, would put the old code back.
   */
  readonly ifGeneration?: number | undefined
}

/** What a reload did. */
export interface ReloadResult {
  readonly id: number
  readonly result: 'reloaded' | 'unchanged' | 'failed'
  readonly trigger: string
  /** The modules whose content changed (or were added, removed). */
  readonly changed: readonly string[]
  /** Every module rebuilt, stopped or started: the changed ones and their dependents, in start order. */
  readonly affected: readonly string[]
  /** The generation now serving each affected module (absent: not running). */
  readonly generations: Readonly<Record<string, number>>
  readonly ms: number
  readonly error?: { readonly code: string; readonly message: string; readonly module?: string } | undefined
  /**
   * A touch or rescan: the files of other modules it found and refused before its transaction (a
   * bundle that does not open), each reported as a reload of its own. The readable ones still ran.
   */
  readonly refused?: readonly { readonly module: string; readonly code: string; readonly message: string }[]
  /** With worker processes: ms between the first and the last worker's swap (the commit skew). */
  readonly skewMs?: number | undefined
  /** With worker processes: each worker's prepare time and swap instant. */
  readonly workers?: readonly RuntimeTiming[] | undefined
  /** Sources that were replaced again while this reload ran: they are reloaded next. */
  readonly again?: readonly string[] | undefined
}
