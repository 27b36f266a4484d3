import type { CrashPolicy } from '../config/host-options.js'

export interface CrashFacts {
  readonly policy: CrashPolicy
  /** The crashed generation is the module's running one (not an old one draining after a reload). */
  readonly current: boolean
  /** Several generations of the module are live and the stack cannot tell which one crashed. */
  readonly ambiguous: boolean
  /** A restart or failure of this generation is already under way. */
  readonly handling: boolean
  /** Counts a restart against the intensity; false when the window is full. */
  readonly admit: () => boolean
}

export type CrashDecision =
  | { readonly action: 'restart'; readonly why?: undefined }
  | { readonly action: 'fail'; readonly loop: boolean; readonly why?: undefined }
  | { readonly action: 'log'; readonly why?: undefined }
  | { readonly action: 'none'; readonly why: string }

/** What one crash does, by `module.crash.policy` and the restart intensity. */
export function decide(facts: CrashFacts): CrashDecision {
  if (facts.policy === 'log') return { action: 'log' }
  // an old generation draining after a reload: the new one is not to blame
  if (!facts.current)
    return { action: 'none', why: 'not the running generation (still starting, draining or stopped)' }
  // rather leave a crashed new generation running (its next crash restarts it) than restart a
  // healthy one for its predecessor's leftovers
  if (facts.ambiguous)
    return { action: 'none', why: 'an older generation is still draining: which one crashed is not known' }
  // several requests of one generation crashing before its restart swaps: one restart
  if (facts.handling) return { action: 'none', why: 'a restart or failure of this generation is under way' }
  if (facts.policy === 'fail') return { action: 'fail', loop: false }
  return facts.admit() ? { action: 'restart' } : { action: 'fail', loop: true }
}
