import { lstat, readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { nyalaError } from '../errors.js'
import { signatureEntry } from './signature-format.js'

/**
 * Reads an exploded bundle directory into memory, the same shape a zip gives,
 * so a module never reads its files from disk after loading. Symbolic links
 * are not followed: they could point outside the bundle.
 */
export async function readDirectory(
  bundle: string,
  dir: string,
  maxBytes: number,
): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>()
  let total = 0
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(dir, rel))).sort()
    for (const name of names) {
      const entry = rel ? `${rel}/${name}` : name
      // META-INF holds no module files; its signature entry is read, as from a zip
      if (entry === 'META-INF') {
        await readSignature(dir, files)
        continue
      }
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

async function readSignature(dir: string, files: Map<string, Buffer>): Promise<void> {
  const file = path.join(dir, signatureEntry)
  try {
    if ((await lstat(file)).isFile()) files.set(signatureEntry, await readFile(file))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
