import type { HostOptions } from '../config/host-options.js'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import type { CodeOwner } from '../runtime/code-owner.js'
import { attribute } from './attribution.js'
import { IntensityWindow } from './intensity.js'
import { decide } from './policy.js'

export type CrashOrigin = 'uncaughtException' | 'unhandledRejection'

/** What the supervisor needs of the host; the host implements it (src/reload/crash-actions.ts). */
export interface SupervisedHost {
  readonly log: Logger
  /** Generations started and not stopped yet (running, or draining after a reload). */
  live(): Iterable<CodeOwner>
  /** The last generations that stopped. */
  stopped(): Iterable<CodeOwner>
  /** The number of the module's running generation; `undefined` when it does not run. */
  runningGeneration(module: string): number | undefined
  /** Counts a crash of the module (GET /modules, metrics); returns its count. */
  countCrash(module: string): number
  /** Tells listeners (`GET /events`). */
  crashed(owner: CodeOwner, error: NyalaError, action: string): void
  /**
   * Rebuilds the module and its dependents from its current bundle (a forced reload), if
   * `generation` (the one that crashed) still runs once the module's lock is had.
   */
  restart(module: string, generation: number): Promise<unknown>
  /**
   * Marks the module failed with `error` (its dependents follow) and stops its generation, if
   * `generation` still runs once the module's lock is had.
   */
  fail(module: string, error: NyalaError, generation: number): Promise<unknown>
}

/**
 * Like an Erlang supervisor: a crash of module code (an uncaught exception or
 * unhandled rejection, attributed to its generation) restarts that module,
 * within `module.crash.max.restarts` per `module.crash.window`, then fails it;
 * every other module keeps serving.
 */
export class Supervisor {
  readonly #host: SupervisedHost
  readonly #options: HostOptions['crash']
  readonly #windows = new Map<string, IntensityWindow>()
  /** Generations a restart or failure is under way for: more crashes of them are counted, not acted on. */
  readonly #handling = new Set<string>()

  constructor(host: SupervisedHost, options: HostOptions['crash']) {
    this.#host = host
    this.#options = options
  }

  /**
   * Handles one uncaught error. False when no module owns it: the host's own
   * error, which the caller deals with.
   */
  handle(err: unknown, origin: CrashOrigin): boolean {
    const found = attribute(err, this.#host.live(), this.#host.stopped())
    if (!found) return false
    const { owner } = found
    const host = this.#host
    const crashes = host.countCrash(owner.module)
    const key = `${owner.module}\u0000${owner.generation}`
    const decision = decide({
      policy: this.#options.policy,
      current: host.runningGeneration(owner.module) === owner.generation,
      ambiguous: found.ambiguous,
      handling: this.#handling.has(key),
      admit: () => this.#window(owner.module).admit(),
    })
    const policy = this.#options.policy
    const reason = reasonOf(err)
    const error = nyalaError('NYALA_ERR_MODULE_CRASHED', {
      module: owner.module,
      generation: owner.generation,
      origin,
      policy,
      reason,
    })
    host.log.error(
      {
        ...error.toJSON(),
        stack: stackText(err),
        attributedBy: found.by,
        ...(found.ambiguous ? { generationKnown: false } : {}),
        crashes,
        action: decision.action,
        ...(decision.why === undefined ? {} : { why: decision.why }),
      },
      `${error.message}; ${decision.action === 'none' ? `nothing done: ${decision.why}` : `action: ${decision.action}`}`,
    )
    host.crashed(owner, error, decision.action)
    if (decision.action === 'restart' || decision.action === 'fail') {
      const failure =
        decision.action === 'fail' && decision.loop
          ? nyalaError('NYALA_ERR_MODULE_CRASH_LOOP', {
              module: owner.module,
              restarts: this.#window(owner.module).count(),
              window: this.#options.windowMs / 1000,
              max: this.#options.maxRestarts,
              reason,
            })
          : error
      this.#handling.add(key)
      const done =
        decision.action === 'restart'
          ? host.restart(owner.module, owner.generation)
          : host.fail(owner.module, failure, owner.generation)
      void done
        .catch((e: unknown) =>
          host.log.error(
            { module: owner.module, generation: owner.generation, reason: reasonOf(e) },
            `module ${owner.module}: ${decision.action} after a crash failed: ${reasonOf(e)}`,
          ),
        )
        .finally(() => this.#handling.delete(key))
    }
    return true
  }

  /**
   * Forgets a module's restarts: an operator's reload or a deploy that brings
   * it back starts a fresh count.
   */
  reset(module: string): void {
    this.#windows.delete(module)
  }

  #window(module: string): IntensityWindow {
    let window = this.#windows.get(module)
    if (!window) {
      window = new IntensityWindow(this.#options.maxRestarts, this.#options.windowMs)
      this.#windows.set(module, window)
    }
    return window
  }
}

function stackText(err: unknown): string {
  const stack = (err as { stack?: unknown } | null)?.stack
  return typeof stack === 'string' ? stack : String(err)
}
