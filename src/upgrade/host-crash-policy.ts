import type { HostCrashAction } from '../config/host-options.js'

export type Phase = 'starting' | 'serving' | 'handing-over' | 'stopping'

export interface HostCrashFacts {
  /** `host.crash.action`. */
  readonly action: HostCrashAction
  /** The process knows how it was started, so it can start a successor the same way. */
  readonly canStartSuccessor: boolean
  readonly phase: Phase
  /** Counts a replacement along the chain; the successor's environment, or undefined past the bound. */
  readonly admit: () => Record<string, string> | undefined
}

export type HostCrashDecision =
  | { readonly action: 'upgrade'; readonly env: Record<string, string> }
  | { readonly action: 'exit'; readonly why: string; readonly loop: boolean }
  /** A SIGQUIT handover is already running: it is the replacement, its end decides. */
  | { readonly action: 'handover under way' }

/** What the host's own crash (an uncaught error outside every module) does. */
export function decideHostCrash(facts: HostCrashFacts): HostCrashDecision {
  const exit = (why: string, loop = false): HostCrashDecision => ({ action: 'exit', why, loop })
  if (facts.action === 'exit') return exit('host.crash.action=exit')
  if (!facts.canStartSuccessor) return exit('no command to start a successor with')
  if (facts.phase === 'starting') return exit('not serving yet: no listeners to hand over')
  if (facts.phase === 'stopping') return exit('stopping already')
  if (facts.phase === 'handing-over') return { action: 'handover under way' }
  const env = facts.admit()
  return env ? { action: 'upgrade', env } : exit('host.crash.max.upgrades reached', true)
}
