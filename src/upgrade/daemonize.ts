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
): Promise<DaemonStarted> {
  mkdirSync(path.dirname(logFile), { recursive: true })
  const out = openSync(logFile, 'a', 0o640)
  let child: ReturnType<typeof spawn>
  try {
    child = spawn(process.execPath, [...process.execArgv, cli, 'start', ...args], {
      detached: true,
      stdio: ['ignore', out, out, 'pipe'],
      env: { ...process.env, [readyFdVariable]: '3' },
    })
  } finally {
    closeSync(out)
  }
  const pid = child.pid ?? 0
  const pipe = child.stdio[3] as NodeJS.ReadableStream
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return new Promise<DaemonStarted>((resolve, reject) => {
    let buffered = ''
    let settled = false
    const settle = (fn: () => void) => {
      if (settled) return
      settled = true
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
            log: logFile,
          }),
        ),
      )
    child.once('exit', onExit)
    child.once('error', (err) =>
      settle(() =>
        reject(nyalaError('NYALA_ERR_DAEMONIZE', { daemonPid: pid, reason: err.message, log: logFile })),
      ),
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
                log: logFile,
              }),
            ),
          )
        } else settle(() => resolve({ pid, report, exited }))
      }
    })
  })
}
