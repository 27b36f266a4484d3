import { existsSync } from 'node:fs'
import { copyFile, link, readFile, rename, rm, unlink } from 'node:fs/promises'
import path from 'node:path'
import { sha256Hex } from '../bundle/content-hash.js'
import { syncDirectory, syncFile } from '../bundle/durable.js'
import { isDirectory } from '../bundle/is-directory.js'
import { placeAtomically } from '../bundle/staged-file.js'
import { nyalaError, reasonOf } from '../errors.js'
import { faultPause, faultPoint } from '../fault-point.js'
import type { Change } from './change.js'
import { holds, writeIntent } from './commit-journal.js'
import { fileStamp } from './file-stamp.js'

export interface CommitOutcome {
  /** True when the source was replaced again while its reload ran: it must be reloaded once more. */
  readonly newerSource: boolean
  /**
   * Flushes the directories whose entries the commit changed (nothing when
   * `sync` is off). Left to the caller, so the swap does not wait for it: the
   * rename is atomic without it, the flush only makes it survive a power cut.
   */
  readonly flush: () => Promise<void>
  /**
   * Puts the files back as they were before this commit: the `.tmp` or staged file in its place
   * and the replaced bundle under its own name (from `.previous`). For a transaction that fails
   * after this commit, when a later module's commit fails: the old generations keep serving, so
   * `modules/` must hold their bundles, and the deploys stay pending. Throws what it could not
   * restore (an exploded directory replaced by a zip is not kept, so it cannot come back).
   */
  readonly undo: () => Promise<void>
}

export interface CommitOptions {
  /**
   * Flush the new bundle's data before its rename and the directories after
   * (`auto.reload.fsync`).
   * @default true
   */
  readonly sync?: boolean
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
 *
 * Crash safety (docs/deploying.md, "Crash-safe files"): at every instant the
 * module has exactly one complete bundle in `modules/`, old or new, and the
 * source is either still in place or committed. The new bytes are flushed
 * before the rename that publishes them, and the directories after it (by
 * the outcome's `flush`, which the caller runs after the swap). A
 * commit that changes the file name writes its intent first (commit-journal.ts),
 * so the two bundles a kill could leave between "new name in" and "old name
 * out" are resolved at the next start.
 */
export async function commitChange(
  change: Change,
  current: string | undefined,
  { sync = true }: CommitOptions = {},
): Promise<CommitOutcome> {
  const { source, target, data } = change
  if (!source || !target || source === target)
    return { newerSource: false, flush: async () => {}, undo: async () => {} }
  const fail = (from: string, to: string, err: unknown) =>
    nyalaError('NYALA_ERR_RELOAD_COMMIT', { module: change.name, from, to, reason: reasonOf(err) }, err)

  // keep what is replaced: the bundle at the target, or the module's old file under another name
  const old = current && current !== target ? current : target
  const previous = `${old}.previous`
  let kept: Kept = 'absent'
  try {
    kept = await keepPrevious(old)
  } catch (err) {
    throw fail(old, `${old}.previous`, err)
  }
  faultPoint('commit-previous', change.name)

  const dir = path.dirname(target)
  // a zip bundle's hash is the sha256 of the bytes it was opened from (open-bundle.ts): these bytes
  // are not hashed a second time on the serving thread
  const hash = hashOf(change)
  // the identity of the file whose bytes are checked, before and after: what is renamed into
  // modules/ below must be that file, not a newer deploy that took its name meanwhile
  const checked = hash === undefined ? undefined : await identityOf(source)
  const unchanged =
    hash !== undefined && (await holds(source, hash)) && checked === (await identityOf(source))
  const changed = new Set([dir, path.dirname(source)])
  const flush = async () => {
    if (sync) for (const d of changed) await syncDirectory(d)
  }
  let newer = false
  let how: 'renamed' | 'copied' | 'written' = 'written'
  let removedOld = false
  try {
    const renamed = old !== target && hash !== undefined
    const done = renamed
      ? await writeIntent(
          dir,
          { module: change.name, old: rel(dir, old), target: rel(dir, target), hash },
          sync,
        )
      : undefined
    if (renamed) faultPoint('commit-intent', change.name)
    if (unchanged || data === undefined) {
      const moved = await moveInto(source, target, sync, change.name, data)
      how = moved
      if (
        moved === 'renamed' &&
        checked !== undefined &&
        data !== undefined &&
        (await identityOf(target)) !== checked
      ) {
        // a newer file took the source's name between the check and the rename, and went in
        // untested: it goes back under the source's name (unless yet another file is there now),
        // for the next reload, and the bytes that were tested take the target
        await link(target, source).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'EEXIST') throw err
        })
        await placeAtomically(dir, path.basename(target), data, { sync, syncDirectory: false })
        newer = true
        how = 'written'
      }
    } else await placeAtomically(dir, path.basename(target), data, { sync, syncDirectory: false })
    faultPoint('commit-renamed', change.name)
    if (old !== target) {
      // the new name is on the disk before the old one goes, and the old one is gone before the
      // intent that would finish the job is: a file system that reorders its metadata writes
      // cannot make a power cut leave neither, or two without an intent
      await flush()
      faultPoint('commit-synced', change.name)
      await rm(old, { force: true, recursive: true })
      removedOld = true
      if (sync) await syncDirectory(path.dirname(old))
      faultPoint('commit-old-removed', change.name)
      await done?.()
    }
  } catch (err) {
    throw fail(source, target, err)
  }
  const undo = async () => {
    try {
      // an exploded directory replaced by a zip was removed, not kept: the new bundle stays, so the
      // module keeps a bundle in modules/ (the one its new generation started from)
      if (removedOld && kept === 'directory')
        throw new Error(`${old} was an exploded directory, not kept as .previous`)
      // the deploy back where it was placed: it is pending again, as after a refused reload
      if (how === 'renamed') await rename(target, source)
      else if (how === 'copied' && data !== undefined && !existsSync(source))
        await placeAtomically(path.dirname(source), path.basename(source), data, {
          sync,
          syncDirectory: false,
        })
      // the replaced bundle back under its name (over the new one when the name is the same); a
      // module this commit added has none
      if (kept === 'kept') await rename(previous, old)
      if (old !== target || kept !== 'kept') await rm(target, { force: true })
      if (sync) for (const d of changed) await syncDirectory(d)
    } catch (err) {
      throw fail(target, old, err)
    }
  }
  return { newerSource: (data !== undefined && !unchanged) || newer, flush, undo }
}

/** What `keepPrevious` did with the replaced bundle. */
type Kept = 'kept' | 'directory' | 'absent'

/**
 * Keeps the bundle a commit replaces as `<file>.previous` (until the next success): a copy for the
 * operator, never served, and the way back when a later module's commit fails (the outcome's
 * `undo`). Not flushed. An exploded directory is not kept: a copy of a whole tree on the reload's
 * path, and a `<dir>.previous` directory would be loaded as a module at the next start.
 */
async function keepPrevious(old: string): Promise<Kept> {
  if (await isDirectory(old)) return 'directory'
  const previous = `${old}.previous`
  // one unlink (rm looks at the file twice first); anything but a file falls to rm, which says why
  await unlink(previous).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') await rm(previous, { force: true })
  })
  return link(old, previous).then(
    (): Kept => 'kept',
    async (err: NodeJS.ErrnoException): Promise<Kept> => {
      // nothing to keep: a module added by this commit
      if (err.code === 'ENOENT') return 'absent'
      await copyFile(old, previous)
      return 'kept'
    },
  )
}

const rel = (dir: string, file: string) => path.relative(dir, file)

/**
 * Renames `source` onto `target`, its data flushed first; across file systems, a copy of `data`
 * (the bytes that were tested; the source's bytes when there are none) then the source's removal.
 */
async function moveInto(
  source: string,
  target: string,
  sync: boolean,
  module: string,
  data: Buffer | undefined,
): Promise<'renamed' | 'copied'> {
  if (sync) await syncFile(source)
  faultPoint('commit-before-rename', module)
  await faultPause('commit-before-rename', module)
  try {
    await rename(source, target)
    return 'renamed'
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err
    // the copy is in place (and flushed) before the source goes: a kill between leaves both, and
    // the source is then a copy of what serves, moved in without a rebuild at the next start
    await placeAtomically(path.dirname(target), path.basename(target), data ?? (await readFile(source)), {
      sync,
      syncDirectory: false,
    })
    await rm(source, { force: true })
    return 'copied'
  }
}

/** The sha256 of the bytes a change was loaded from (undefined for a directory). */
function hashOf(change: Change): string | undefined {
  const { data } = change
  return data === undefined ? undefined : change.bundle?.kind === 'zip' ? change.bundle.hash : sha256Hex(data)
}

/** Whether a change's source still holds the bytes it was loaded from (a directory: that it is there). */
export async function sourceStillHolds(change: Change): Promise<boolean> {
  if (!change.source) return false
  const hash = hashOf(change)
  return hash === undefined ? existsSync(change.source) : holds(change.source, hash)
}

/** A file's identity for the commit: its stamp without the change time, which a rename moves. */
const identityOf = (file: string) => fileStamp(file, { ctime: false })
