import { existsSync } from 'node:fs'
import { readdir, rm } from 'node:fs/promises'
import path from 'node:path'
import { syncDirectory } from '../bundle/durable.js'
import { partialName } from '../bundle/staged-file.js'
import type { HostOptions } from '../config/host-options.js'
import { nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { isAlive } from '../process-alive.js'
import { holds, intentName, readIntent } from './commit-journal.js'

/** What start-up recovery did. */
export interface Recovered {
  /** Half-written temporary files (`.<file>.<pid>.<hex>.part`) of writers that are gone: removed. */
  readonly partials: readonly string[]
  /** Commits that changed a module's file name, interrupted between their two steps. */
  readonly commits: readonly { module: string; finished: boolean; removed?: string }[]
}

/**
 * A leftover is ours to clean when the process that wrote it is gone. This
 * runs before the host writes anything, so a leftover naming our own pid is
 * from an earlier process that had it (a container restarted as pid 1). A
 * pid reused by another live process keeps its leftovers: they are hidden
 * names, never read as bundles, and go at a later start.
 */
const writerGone = (pid: number) => pid === process.pid || !isAlive(pid)

/**
 * Start-up recovery of what a killed host (or `nyala deploy`) left on the
 * deploy paths, before any bundle is read (docs/deploying.md, "Crash-safe
 * files"): interrupted renaming commits are finished or dropped, half-written
 * temporary files are removed. `.tmp` and staged files are not touched here:
 * the start-up pickup deploys them.
 */
export async function recoverLeftovers(options: HostOptions, log: Logger): Promise<Recovered> {
  const dir = options.modulesDir
  const partials: string[] = []
  const commits: { module: string; finished: boolean; removed?: string }[] = []
  const warn = (file: string, err: unknown) => {
    const e = nyalaError('NYALA_ERR_LEFTOVER_RECOVERY', { file, reason: reasonOf(err) }, err)
    log.warn(e.toJSON(), e.message)
  }
  for (const where of new Set([dir, options.autoReload.stagingDir])) {
    let names: string[]
    try {
      names = existsSync(where) ? await readdir(where) : []
    } catch (err) {
      warn(where, err)
      continue
    }
    let changed = false
    for (const name of names) {
      const file = path.join(where, name)
      const partial = partialName.exec(name)
      const intent = where === dir ? intentName.exec(name) : null
      try {
        if (partial && writerGone(Number(partial[2]))) {
          await rm(file, { force: true })
          partials.push(file)
          changed = true
        } else if (intent && writerGone(Number(intent[1]))) {
          commits.push(await finishCommit(dir, file))
          changed = true
        }
      } catch (err) {
        warn(file, err)
      }
    }
    if (changed && options.autoReload.fsync) await syncDirectory(where).catch((err) => warn(where, err))
  }
  if (partials.length > 0 || commits.length > 0)
    log.info(
      { partials, commits },
      `recovered from an interrupted run: ${commits.length} commit(s) finished or dropped, ${partials.length} half-written temporary file(s) removed`,
    )
  return { partials, commits }
}

/**
 * The new bundle holding the new bytes means the rename happened: the old
 * file goes (it is kept as `<old>.previous`). Otherwise the commit never got
 * that far: the old file serves, and the `.tmp` or staged file is still where
 * it was, for the start-up pickup.
 */
async function finishCommit(dir: string, file: string): Promise<Recovered['commits'][number]> {
  const intent = await readIntent(dir, file)
  let done: Recovered['commits'][number] = { module: path.basename(file), finished: false }
  if (intent) {
    done = { module: intent.module, finished: false }
    const old = path.join(dir, intent.old)
    if (await holds(path.join(dir, intent.target), intent.hash)) {
      await rm(old, { force: true, recursive: true })
      done = { module: intent.module, finished: true, removed: old }
    }
  }
  await rm(file, { force: true })
  return done
}
