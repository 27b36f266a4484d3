import { mkdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import JSZip from 'jszip'
import { readDirectory } from './read-directory.js'

export interface PackOptions {
  /** Output file. @default `<dir>.zip` beside the directory */
  readonly out?: string | undefined
  /** Deflate level 0-9. @default 6 */
  readonly level?: number
}

/**
 * Packs a module's source directory into a bundle (a zip usable as `.zip` or
 * `.jar`). Entries are written in sorted order with a fixed date, so packing
 * the same files twice gives the same bytes and the same content hash.
 */
export async function packDirectory(dir: string, opts: PackOptions = {}): Promise<string> {
  const source = path.resolve(dir)
  const out = path.resolve(opts.out ?? `${source.replace(/[/\\]+$/, '')}.zip`)
  const files = await readDirectory(source, source, Number.MAX_SAFE_INTEGER)
  const zip = new JSZip()
  const date = new Date('2000-01-01T00:00:00Z')
  for (const [entry, content] of files) zip.file(entry, content, { date, createFolders: false })
  const data = await zip.generateAsync({
    type: 'nodebuffer',
    compression: 'DEFLATE',
    compressionOptions: { level: opts.level ?? 6 },
    platform: 'UNIX',
  })
  await mkdir(path.dirname(out), { recursive: true })
  // write beside and rename, so a watcher never sees half a bundle
  const tmp = `${out}.${process.pid}.partial`
  await writeFile(tmp, data)
  await rename(tmp, out)
  return out
}
