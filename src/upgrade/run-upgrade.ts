import { closeSync, openSync, readSync, statSync } from 'node:fs'
import type { HostOptions } from '../config/host-options.js'
import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import { daemonize } from './daemonize.js'
import { connectRetryMs } from './hand-over.js'
import { inspectPidfile, isAlive, readPid } from './pidfile.js'

/** SIGQUIT to pidfile update: connect retries, two answers and the adoption, with room to spare. */
const handoverTimeoutMs = connectRetryMs + 35_000
const pollMs = 50

export interface UpgradeOutcome {
  readonly old: number
  readonly successor: number
}

/**
 * `nyala upgrade`: starts `nyala start --upgrade` in the background, waits until
 * it waits on the upgrade socket, sends SIGQUIT to the pid in the pidfile, and
 * waits for the pidfile to name the successor. Any failure throws
 * NYALA_ERR_UPGRADE_FAILED with the reason (the successor's own error when it
 * logged one); the old instance then still serves, and a successor that did not
 * take over is stopped.
 */
export async function runUpgrade(
  cli: string,
  startArgs: readonly string[],
  options: HostOptions,
  say: (line: string) => void,
): Promise<UpgradeOutcome> {
  const { pidFile, logFile } = options.process
  const state = inspectPidfile(pidFile)
  if (state.state !== 'live') {
    const reason =
      state.state === 'absent'
        ? 'does not exist'
        : state.state === 'invalid'
          ? `holds no pid ("${state.content}")`
          : `names pid ${state.pid}, which is not a running Nyala instance`
    throw nyalaError('NYALA_ERR_NOT_RUNNING', { file: pidFile, reason })
  }
  const old = state.pid
  const failed = (reason: string) =>
    nyalaError('NYALA_ERR_UPGRADE_FAILED', { reason: `${reason}; pid ${old} still serves` })

  say(`nyala: upgrading pid ${old}: starting the successor (log: ${logFile})`)
  const logStart = sizeOf(logFile)
  let started: Awaited<ReturnType<typeof daemonize>>
  try {
    started = await daemonize(cli, ['--upgrade', ...startArgs], logFile)
  } catch (err) {
    throw failed(`the successor did not start: ${isNyalaError(err) ? err.message : reasonOf(err)}`)
  }
  const successor = started.pid
  let gone: { code: number | null; signal: string | null } | undefined
  void started.exited.then((e) => {
    gone = e
  })
  say(`nyala: successor pid ${successor} loaded its modules; sending SIGQUIT to pid ${old}`)
  try {
    process.kill(old, 'SIGQUIT')
  } catch (err) {
    stopSuccessor(successor)
    throw nyalaError('NYALA_ERR_UPGRADE_FAILED', { reason: `cannot signal pid ${old}: ${reasonOf(err)}` })
  }

  const deadline = Date.now() + handoverTimeoutMs
  for (;;) {
    if (readPid(pidFile) === successor) return { old, successor }
    if (gone) {
      const why = lastError(logFile, logStart, successor) ?? lastError(logFile, logStart, old)
      throw failed(
        `the successor pid ${successor} exited (${gone.code ?? gone.signal})${why ? `: ${why}` : ''}`,
      )
    }
    if (Date.now() >= deadline) {
      stopSuccessor(successor)
      const why = lastError(logFile, logStart, old)
      throw failed(`no handover within ${handoverTimeoutMs} ms${why ? `: ${why}` : ''}`)
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs))
  }
}

function stopSuccessor(pid: number): void {
  if (isAlive(pid)) process.kill(pid, 'SIGTERM')
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size
  } catch {
    return 0
  }
}

/** The last error record (pino level >= 50) a pid appended to the log since `from`. */
function lastError(file: string, from: number, pid: number): string | undefined {
  let text: string
  try {
    const fd = openSync(file, 'r')
    try {
      const length = Math.min(Math.max(0, sizeOf(file) - from), 1 << 20)
      const buffer = Buffer.alloc(length)
      readSync(fd, buffer, 0, length, from)
      text = buffer.toString('utf8')
    } finally {
      closeSync(fd)
    }
  } catch {
    return undefined
  }
  let found: string | undefined
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const r = JSON.parse(line) as { pid?: number; level?: number; code?: string; msg?: string }
      if (r.pid === pid && (r.level ?? 0) >= 50) found = r.code ? `${r.code}: ${r.msg}` : r.msg
    } catch {
      // a partial line
    }
  }
  return found
}
