import { lstat, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { nyalaError } from '../errors.js'
import type { BundleFiles } from './read-zip.js'

/**
 * Reads an exploded bundle directory into memory, the same shape a zip gives,
 * so a module never reads its files from disk after loading. Symbolic links
 * are not followed: they could point outside the bundle.
 */
export async function readDirectory(bundle: string, dir: string, maxBytes: number): Promise<BundleFiles> {
  const files = new Map<string, Buffer>()
  let total = 0
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(dir, rel))).sort()
    for (const name of names) {
      const entry = rel ? `${rel}/${name}` : name
      if (entry === 'META-INF') continue
      const stat = await lstat(path.join(dir, entry))
      if (stat.isDirectory()) await walk(entry)
      else if (stat.isFile()) {
        total += stat.size
        if (total > maxBytes)
          throw nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: maxBytes, entry })
        files.set(entry, await readFile(path.join(dir, entry)))
      }
    }
  }
  await walk('')
  return files
}
