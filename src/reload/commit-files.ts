import { copyFile, link, readFile, rename, rm } from 'node:fs/promises'
import path from 'node:path'
import { sha256Hex } from '../bundle/content-hash.js'
import { placeAtomically } from '../bundle/staged-file.js'
import { nyalaError, reasonOf } from '../errors.js'
import type { Change } from './change.js'

export interface CommitOutcome {
  /** True when the source was replaced again while its reload ran: it must be reloaded once more. */
  readonly newerSource: boolean
}

/**
 * Step 5 of the transaction: puts the loaded bundle in `modules/` and keeps
 * the one it replaces as `<file>.previous` (until the next success).
 *
 * The source is renamed onto the target (atomic on one file system) only if it
 * still holds the bytes that were loaded and started; if it was replaced while
 * the reload ran, the loaded bytes are written to the target instead and the
 * newer source is left where it is, for the next reload. A staging directory on
 * another file system is copied, then renamed in place.
 */
export async function commitChange(change: Change, current: string | undefined): Promise<CommitOutcome> {
  const { source, target, data } = change
  if (!source || !target || source === target) return { newerSource: false }
  const fail = (from: string, to: string, err: unknown) =>
    nyalaError('NYALA_ERR_RELOAD_COMMIT', { module: change.name, from, to, reason: reasonOf(err) }, err)

  // keep what is replaced: the bundle at the target, or the module's old file under another name
  const old = current && current !== target ? current : target
  const previous = `${old}.previous`
  try {
    await rm(previous, { force: true })
    await link(old, previous).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return
      await copyFile(old, previous)
    })
  } catch (err) {
    throw fail(old, previous, err)
  }

  const unchanged = data !== undefined && (await sameBytes(source, data))
  try {
    if (unchanged) await moveInto(source, target)
    else if (data !== undefined) await writeAtomically(target, data)
    else await moveInto(source, target)
    if (old !== target) await rm(old, { force: true, recursive: true })
  } catch (err) {
    throw fail(source, target, err)
  }
  return { newerSource: data !== undefined && !unchanged }
}

async function sameBytes(file: string, data: Buffer): Promise<boolean> {
  try {
    const now = await readFile(file)
    return sha256Hex(now) === sha256Hex(data)
  } catch {
    return false
  }
}

async function moveInto(source: string, target: string): Promise<void> {
  try {
    await rename(source, target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
    await writeAtomically(target, await readFile(source))
    await rm(source, { force: true })
  }
}

function writeAtomically(target: string, data: Buffer): Promise<string> {
  return placeAtomically(path.dirname(target), path.basename(target), data)
}
