import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { isAlive } from '../process-alive.js'

export type PidfileState =
  | { readonly state: 'absent' }
  | { readonly state: 'invalid'; readonly content: string }
  | { readonly state: 'stale'; readonly pid: number }
  | { readonly state: 'live'; readonly pid: number }

export { isAlive }

/**
 * False when /proc shows the pid belongs to something other than `nyala start`
 * (a pid reused after a crash), so it is neither refused as live nor sent SIGQUIT;
 * true when it looks like Nyala or cannot be checked (no /proc).
 */
export function isNyalaProcess(pid: number): boolean {
  let args: string[]
  try {
    args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
  } catch {
    return true
  }
  const cli = args.findIndex((a) => /(^|\/)(cli\.js|nyala)$/.test(a))
  return cli >= 0 && args.slice(cli + 1).includes('start')
}

export function readPid(file: string): number | undefined {
  const s = inspectPidfile(file)
  return s.state === 'live' || s.state === 'stale' ? s.pid : undefined
}

export function inspectPidfile(file: string): PidfileState {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'absent' }
    throw nyalaError('NYALA_ERR_PIDFILE_INVALID', { file, content: reasonOf(err) }, err)
  }
  const trimmed = text.trim()
  if (!/^[1-9]\d{0,9}$/.test(trimmed)) return { state: 'invalid', content: trimmed.slice(0, 40) }
  const pid = Number(trimmed)
  return isAlive(pid) && isNyalaProcess(pid) ? { state: 'live', pid } : { state: 'stale', pid }
}

/**
 * Before a plain start: a pidfile naming a live process refuses the start (two
 * instances would fight for the port); a stale or unreadable one is logged and
 * replaced once this instance serves.
 */
export function checkPidfileFree(file: string, log: Logger): void {
  const s = inspectPidfile(file)
  if (s.state === 'live' && s.pid !== process.pid) {
    throw nyalaError('NYALA_ERR_PIDFILE_LIVE', { file, livePid: s.pid })
  }
  if (s.state === 'stale') {
    const warning = nyalaError('NYALA_ERR_PIDFILE_STALE', { file, deadPid: s.pid })
    log.warn(warning.toJSON(), warning.message)
  } else if (s.state === 'invalid') {
    const warning = nyalaError('NYALA_ERR_PIDFILE_INVALID', { file, content: s.content })
    log.warn(warning.toJSON(), `${warning.message}: replacing it`)
  }
}

/**
 * Writes our pid atomically (temp file + rename): a reader such as
 * `kill -QUIT "$(cat run/nyala.pid)"` never sees a half-written file.
 */
export function writePidfile(file: string, pid = process.pid): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`)
  try {
    ensureDirectory(path.dirname(file))
    writeFileSync(temp, `${pid}\n`, { mode: 0o644 })
    renameSync(temp, file)
  } catch (err) {
    rmSync(temp, { force: true })
    throw nyalaError('NYALA_ERR_PIDFILE_WRITE', { file, reason: reasonOf(err) }, err)
  }
}

/** Removes the pidfile at exit, only while it still names us (a successor may own it now). */
export function releasePidfile(file: string, pid = process.pid): void {
  try {
    if (readFileSync(file, 'utf8').trim() === String(pid)) rmSync(file, { force: true })
  } catch {
    // gone or unreadable: nothing of ours to remove
  }
}

/**
 * Makes the pidfile's (or upgrade socket's) own directory, `run/` by default, but not its
 * parents: a mistyped path fails instead of growing a tree, and a root being deleted
 * (a test cleaning up while an instance starts) is not recreated behind its back.
 */
export function ensureDirectory(dir: string, mode = 0o755): void {
  try {
    mkdirSync(dir, { mode })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
}
