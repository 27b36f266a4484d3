import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import path from 'node:path'
import { nyalaError } from '../errors.js'
import { type ReadyReport, readyFdVariable } from './readiness.js'

export interface DaemonStarted {
  readonly pid: number
  readonly report: Extract<ReadyReport, { state: 'serving' | 'waiting' }>
  /** Settles when the daemon exits, for a caller that watches it (`nyala upgrade`). */
  readonly exited: Promise<{ code: number | null; signal: string | null }>
}

export interface DaemonizeOptions {
  /**
   * Where the child's stdout and stderr go: appended to `log.file` (a daemon), or this
   * process's own (a successor of a crashed host keeps writing where its predecessor did).
   * @default 'file'
   */
  readonly output?: 'file' | 'inherit'
  /** Variables added to this process's environment for the child. @default {} */
  readonly env?: Readonly<Record<string, string>>
  /**
   * Not ready within this many ms: the child's process group is killed and the start
   * rejected. @default no limit (the modules' own start timeouts bound it)
   */
  readonly timeoutMs?: number
  /** Told the child's pid once it is spawned, before it is ready. */
  readonly onSpawn?: (pid: number) => void
}

/**
 * Starts `node <cli> start <args>` detached (its own session, stdin closed,
 * stdout and stderr appended to `logFile`) and resolves once it reports ready:
 * serving, or for a successor, waiting on the upgrade socket. A child that fails
 * or exits first rejects with NYALA_ERR_DAEMONIZE carrying its reason, so
 * `nyala start --daemonize` exits non-zero instead of leaving nothing behind silently.
 */
export async function daemonize(
  cli: string,
  args: readonly string[],
  logFile: string,
  opts: DaemonizeOptions = {},
): Promise<DaemonStarted> {
  const inherit = opts.output === 'inherit'
  const log = inherit ? `the output of pid ${process.pid}` : logFile
  let out: number | undefined
  if (!inherit) {
    mkdirSync(path.dirname(logFile), { recursive: true })
    out = openSync(logFile, 'a', 0o640)
  }
  let child: ReturnType<typeof spawn>
  try {
    child = spawn(process.execPath, [...process.execArgv, cli, 'start', ...args], {
      detached: true,
      stdio: ['ignore', out ?? 'inherit', out ?? 'inherit', 'pipe'],
      env: { ...process.env, ...opts.env, [readyFdVariable]: '3' },
    })
  } finally {
    if (out !== undefined) closeSync(out)
  }
  const pid = child.pid ?? 0
  if (pid > 0) opts.onSpawn?.(pid)
  const pipe = child.stdio[3] as NodeJS.ReadableStream
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return new Promise<DaemonStarted>((resolve, reject) => {
    let buffered = ''
    let settled = false
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            // its own process group (detached): whatever it started goes too
            killGroup(pid)
            settle(() =>
              reject(
                nyalaError('NYALA_ERR_DAEMONIZE', {
                  daemonPid: pid,
                  reason: `was not ready within ${opts.timeoutMs} ms (killed)`,
                  log,
                }),
              ),
            )
          }, opts.timeoutMs)
    const settle = (fn: () => void) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.off('exit', onExit)
      fn()
      // the daemon lives on alone: nothing here may keep this process waiting for it
      ;(pipe as unknown as { destroy(): void }).destroy()
      child.unref()
    }
    const onExit = (code: number | null, signal: string | null) =>
      settle(() =>
        reject(
          nyalaError('NYALA_ERR_DAEMONIZE', {
            daemonPid: pid,
            reason: `exited (${code ?? signal}) before it was ready`,
            log,
          }),
        ),
      )
    child.once('exit', onExit)
    child.once('error', (err) =>
      settle(() => reject(nyalaError('NYALA_ERR_DAEMONIZE', { daemonPid: pid, reason: err.message, log }))),
    )
    pipe.setEncoding('utf8')
    pipe.on('data', (chunk: string) => {
      buffered += chunk
      for (let nl = buffered.indexOf('\n'); nl !== -1; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        let report: ReadyReport
        try {
          report = JSON.parse(line) as ReadyReport
        } catch {
          continue
        }
        if (report.state === 'failed') {
          settle(() =>
            reject(
              nyalaError('NYALA_ERR_DAEMONIZE', {
                daemonPid: pid,
                reason: `failed: ${report.code}: ${report.message}`,
                log,
              }),
            ),
          )
        } else settle(() => resolve({ pid, report, exited }))
      }
    })
  })
}

/** SIGKILL to a detached child's process group (its pid); nothing when it is gone. */
export function killGroup(pid: number): void {
  if (pid <= 0) return
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // gone already
  }
}
