import { readFile, rm } from 'node:fs/promises'
import path from 'node:path'
import { sha256HexOffThread } from '../bundle/content-hash.js'
import { syncDirectory } from '../bundle/durable.js'
import { placeAtomically } from '../bundle/staged-file.js'

/**
 * A commit that changes a module's file name (`billing-1.0.zip` replaced by a
 * staged `billing-2.0.zip`, or an exploded directory by a zip) takes two steps
 * in `modules/`: the new name appears, then the old one goes. A kill between
 * them would leave two bundles of one module, which start-up refuses
 * (NYALA_ERR_BUNDLE_DUPLICATE), so the module would serve from neither. The
 * intent is written first, durably, as a hidden `.nyala-commit.<pid>.<module>.json`
 * beside the bundles; start-up recovery finishes the commit from it
 * (recover-leftovers.ts) and the commit removes it once both steps are done.
 */
export interface CommitIntent {
  readonly module: string
  /** The old file or directory, relative to the modules directory: removed once `target` is in place. */
  readonly old: string
  /** The new bundle, relative to the modules directory. */
  readonly target: string
  /** sha256 of the new bundle's bytes: `target` holding them means the rename happened. */
  readonly hash: string
}

/** `.nyala-commit.<pid>.<module>.json`: the pid of the host that wrote it. */
export const intentName = /^\.nyala-commit\.(\d+)\.(.+)\.json$/

/** Writes the intent durably; resolves with a function that removes it. */
export async function writeIntent(
  dir: string,
  intent: CommitIntent,
  sync: boolean,
): Promise<() => Promise<void>> {
  const file = await placeAtomically(
    dir,
    `.nyala-commit.${process.pid}.${intent.module}.json`,
    Buffer.from(JSON.stringify(intent)),
    { sync },
  )
  return async () => {
    await rm(file, { force: true })
    if (sync) await syncDirectory(dir)
  }
}

/** The intent in `file`, or `undefined` when it is not one (or escapes `dir`). */
export async function readIntent(dir: string, file: string): Promise<CommitIntent | undefined> {
  try {
    const raw = JSON.parse(await readFile(file, 'utf8')) as Partial<CommitIntent>
    const inside = (rel: unknown): rel is string =>
      typeof rel === 'string' && rel !== '' && path.dirname(path.resolve(dir, rel)) === path.resolve(dir)
    if (typeof raw.module !== 'string' || typeof raw.hash !== 'string') return undefined
    if (!inside(raw.old) || !inside(raw.target) || raw.old === raw.target) return undefined
    return { module: raw.module, old: raw.old, target: raw.target, hash: raw.hash }
  } catch {
    return undefined
  }
}

/** True when `file` is a regular file holding bytes with this sha256. */
export async function holds(file: string, hash: string): Promise<boolean> {
  try {
    return (await sha256HexOffThread(await readFile(file))) === hash
  } catch {
    return false
  }
}
