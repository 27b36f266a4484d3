import { type BigIntStats, readdirSync, statSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import path from 'node:path'
import { nyalaError } from '../errors.js'
import { readKeyFile, type TrustedKey, type TrustPolicy } from './trust-store.js'

/** What the trust store held when it was last read, and the stamps it was read under. */
interface Snapshot {
  /** The directory's stamp (see `stampOf`); `absent` when it did not exist. */
  readonly dir: string
  /** Each `.pub` file's stamp, taken before it was read. */
  readonly files: ReadonlyMap<string, string>
  readonly keys: readonly TrustedKey[]
  /** A stamp too recent to tell a later change apart (see `racyMs`): read it all again next time. */
  readonly racy: boolean
}

/**
 * A change within this long of a read may leave the stamps equal on a file
 * system with coarse timestamps (whole seconds on some network and FAT file
 * systems): a store changed this recently is read again, not trusted from its
 * stamps (as git does with its index).
 */
const racyMs = 2000

const snapshots = new Map<string, Snapshot>()

/**
 * The trust policy as it is now, as `currentTrustPolicy` reads it, for the
 * reload path: instead of listing the directory and parsing every `.pub` file
 * on the serving thread for each bundle read (a `readdirSync` plus one
 * synchronous read per key), it looks at the stamps (inode, size, change and
 * modification time) of the directory and of each key file read last time,
 * off the thread, and reads the store again only when one of them moved. A
 * key added (the directory changes), removed, or edited in place (revoked,
 * expired: the file changes) therefore applies to the next reload, as before.
 * A store that fails to read is never kept: the next reload reads it again
 * and reports the same error.
 */
export async function trustPolicyNow(settings: {
  readonly required: boolean
  readonly threshold: number
  readonly trustedKeysDir: string
}): Promise<TrustPolicy> {
  return Object.freeze({
    required: settings.required,
    threshold: settings.threshold,
    dir: settings.trustedKeysDir,
    keys: await trustedKeysNow(settings.trustedKeysDir),
  })
}

async function trustedKeysNow(dir: string): Promise<readonly TrustedKey[]> {
  const last = snapshots.get(dir)
  if (last && !last.racy && (await stillCurrent(dir, last))) return last.keys
  const snapshot = readSnapshot(dir)
  snapshots.set(dir, snapshot)
  return snapshot.keys
}

/** True when neither the directory nor any key file read last time changed. */
async function stillCurrent(dir: string, last: Snapshot): Promise<boolean> {
  const files = [...last.files]
  const stamps = await Promise.all([dir, ...files.map(([file]) => file)].map(stampNow))
  return stamps[0] === last.dir && files.every(([, stamp], i) => stamps[i + 1] === stamp)
}

/**
 * Reads the store on this thread, as `readTrustStore` does: each stamp is
 * taken before what it stands for is read, so a change made during the read
 * moves a stamp and the next reload reads again. Only after a change.
 */
function readSnapshot(dir: string): Snapshot {
  const readAt = Date.now()
  let dirStats: BigIntStats | undefined
  try {
    dirStats = statSync(dir, { bigint: true, throwIfNoEntry: false })
  } catch {
    // listing it fails alike and says why, below
  }
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    // a missing directory is an empty store (so required=false needs no directory)
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { dir: 'absent', files: new Map(), keys: [], racy: false }
    throw nyalaError('NYALA_ERR_TRUSTED_KEY_INVALID', {
      file: dir,
      key: 'bundle.trusted.keys',
      value: dir,
      expected: `a readable directory (${(err as Error).message})`,
    })
  }
  let racy = isRacy(dirStats, readAt)
  const files = new Map<string, string>()
  const keys: TrustedKey[] = []
  for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
    const file = path.join(dir, name)
    const stats = statSync(file, { bigint: true, throwIfNoEntry: false })
    racy ||= isRacy(stats, readAt)
    files.set(file, stampOf(stats))
    keys.push(readKeyFile(file))
  }
  return { dir: stampOf(dirStats), files, keys: Object.freeze(keys), racy }
}

/** The stamp of `file` now; `undefined` (equal to no stamp) when it cannot be looked at. */
async function stampNow(file: string): Promise<string | undefined> {
  try {
    return stampOf(await stat(file, { bigint: true }))
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? stampOf(undefined) : undefined
  }
}

function stampOf(stats: BigIntStats | undefined): string {
  if (!stats) return 'absent'
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`
}

/**
 * Written within `racyMs` of the read (by its modification time: a write moves it; one that sets
 * it back, `touch -d`, moves the change time, which the stamp holds).
 */
function isRacy(stats: BigIntStats | undefined, readAt: number): boolean {
  if (!stats) return false
  return Number(stats.mtimeNs / 1_000_000n) >= readAt - racyMs
}
