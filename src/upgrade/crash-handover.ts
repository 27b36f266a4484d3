import { isNyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { daemonize, killGroup } from './daemonize.js'
import { handOver } from './hand-over.js'
import { isAlive } from './pidfile.js'
import type { UpgradeHost } from './upgrade-host.js'

/** How this process was started, so a successor can be started the same way. */
export interface SuccessorCommand {
  /** The CLI script (`process.argv[1]`). */
  readonly cli: string
  /** This process's `nyala start` arguments, without `--upgrade` and `--daemonize`. */
  readonly args: readonly string[]
}

export type ReplaceResult = { ok: true; successor: number } | { ok: false; reason: string }

/** A successor that did not take over gets this long to stop on SIGTERM before SIGKILL. */
const successorStopMs = 5000

/**
 * Replaces this crashed process as `nyala upgrade` would, from the inside: starts
 * `nyala start --upgrade <args>` (writing where this process writes), waits at most
 * `timeoutMs` until it has loaded every module and waits on the upgrade socket, and
 * hands it the listeners (hand-over.ts: resolves ok only on its acknowledgement).
 * Until then this process keeps serving. On any failure a successor that was started
 * is stopped, so no second copy is left behind; the reason comes back.
 */
export async function replaceProcess(
  host: UpgradeHost,
  log: Logger,
  command: SuccessorCommand,
  opts: {
    env: Record<string, string>
    timeoutMs: number
    /** Told the successor's pid as soon as it is spawned. */
    onStarted?: (pid: number) => void
    /** True when this process stopped meanwhile (SIGTERM): no handover then. */
    cancelled?: () => boolean
  },
): Promise<ReplaceResult> {
  let started: Awaited<ReturnType<typeof daemonize>>
  try {
    started = await daemonize(command.cli, ['--upgrade', ...command.args], host.options.process.logFile, {
      output: 'inherit',
      env: opts.env,
      timeoutMs: opts.timeoutMs,
      ...(opts.onStarted ? { onSpawn: opts.onStarted } : {}),
    })
  } catch (err) {
    return {
      ok: false,
      reason: `the successor did not start: ${isNyalaError(err) ? err.message : reasonOf(err)}`,
    }
  }
  const successor = started.pid
  if (opts.cancelled?.()) {
    await stopSuccessor(successor, started.exited)
    return { ok: false, reason: `stopped before the handover; successor pid ${successor} stopped` }
  }
  log.info({ successor }, `host crash: successor pid ${successor} loaded its modules; handing over`)
  const result = await handOver(host, log)
  if (result.ok) return { ok: true, successor }
  await stopSuccessor(successor, started.exited)
  return { ok: false, reason: `the handover to pid ${successor} failed: ${result.error.message}` }
}

/** SIGTERM (a successor still waiting exits at once), then SIGKILL to its group after a bound. */
async function stopSuccessor(pid: number, exited: Promise<unknown>): Promise<void> {
  if (!isAlive(pid)) return
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), successorStopMs)
  })
  if ((await Promise.race([exited, late])) === 'late') killGroup(pid)
  clearTimeout(timer)
}
