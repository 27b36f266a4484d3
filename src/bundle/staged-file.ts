import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile, rename, rm, unlink } from 'node:fs/promises'
import path from 'node:path'
import { nyalaError, reasonOf } from '../errors.js'
import { faultPause, faultPoint } from '../fault-point.js'
import { sha256Hex } from './content-hash.js'
import { syncDirectory } from './durable.js'
import { bundleExtensions, moduleNameOf } from './module-name.js'

/**
 * The module a bundle file name deploys, for a name given to `nyala deploy` or
 * to the admin API's `PUT /deploy/:file`: a plain file name (no directory, not
 * hidden) ending in `.zip` or `.jar` whose name gives a valid module name.
 * Throws NYALA_ERR_DEPLOY_NAME otherwise.
 */
export function stagedModuleName(file: string): string {
  const refuse = (reason: string) => nyalaError('NYALA_ERR_DEPLOY_NAME', { file, reason })
  if (file.includes('/') || file.includes('\\') || file === '..') throw refuse('it holds a path separator')
  // hidden names are the host's (and deploy's) own partial writes: the watcher ignores them
  if (file.startsWith('.')) throw refuse('it starts with "."')
  if (!bundleExtensions.includes(path.extname(file).toLowerCase()))
    throw refuse(`it does not end in ${bundleExtensions.join(' or ')}`)
  const name = moduleNameOf(file)
  if (!name) throw refuse('the name without extension and version is not a valid module name')
  return name
}

/** Options of `placeAtomically`. */
export interface PlaceOptions {
  /**
   * Flush the data before the rename and the directory after it (fsync), so
   * the file survives a power cut whole or not at all. Off only where
   * durability is not wanted (`auto.reload.fsync=false`).
   * @default true
   */
  readonly sync?: boolean
  /**
   * With `sync`: flush the directory after the rename too. Off when the caller
   * flushes it later itself (a reload's commit, after the swap).
   * @default true
   */
  readonly syncDirectory?: boolean
}

/** The hidden temporary names `placeAtomically` writes: `.<file>.<pid>.<8 hex>.part`. */
export const partialName = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.part$/

/**
 * Writes `data` to `<dir>/<file>` atomically: under a hidden temporary name in
 * the same directory (which the watcher ignores, and which names the writing
 * process, so start-up recovery can remove what a killed writer left), then
 * renamed, so a watcher never sees a half-written bundle. Makes `dir` when it
 * is missing. Returns the path written.
 */
export async function placeAtomically(
  dir: string,
  file: string,
  data: Uint8Array,
  { sync = true, syncDirectory: syncDir = true }: PlaceOptions = {},
): Promise<string> {
  await mkdir(dir, { recursive: true })
  const target = path.join(dir, file)
  const temp = path.join(dir, `.${file}.${process.pid}.${randomBytes(4).toString('hex')}.part`)
  try {
    const handle = await open(temp, 'wx')
    try {
      await handle.writeFile(data)
      if (sync) await handle.sync()
    } finally {
      await handle.close()
    }
    faultPoint('place-written')
    await faultPause('place-written')
    await rename(temp, target)
  } catch (err) {
    await rm(temp, { force: true })
    throw err
  }
  if (sync && syncDir) await syncDirectory(dir)
  return target
}

/**
 * A deploy's bundle placed in the staging directory (`nyala deploy`, `PUT /deploy/:file`): a
 * directory that cannot be written (its permissions, a full disk, a file where it should be) is
 * said as such, with the directory and the system's reason, not as a fault of the host.
 */
export async function placeDeploy(
  dir: string,
  file: string,
  data: Uint8Array,
  options: PlaceOptions,
): Promise<string> {
  try {
    return await placeAtomically(dir, file, data, options)
  } catch (err) {
    throw nyalaError('NYALA_ERR_DEPLOY_WRITE', { file, dir, reason: reasonOf(err) }, err)
  }
}

/**
 * Removes `file` if its content still has the sha256 `hash` (what was placed):
 * a newer copy placed meanwhile by someone else is left alone. Returns whether
 * it was removed; a file already gone is not an error.
 */
export async function removeIfSame(file: string, hash: string): Promise<boolean> {
  let data: Buffer
  try {
    data = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (sha256Hex(data) !== hash) return false
  try {
    await unlink(file)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
}
