import { mkdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import JSZip from 'jszip'
import { nyalaError } from '../errors.js'
import { parseManifest } from './manifest.js'
import { moduleNameOf } from './module-name.js'
import { readDirectory } from './read-directory.js'
import { type SigningOptions, signatureFor } from './sign-bundle.js'
import { signatureEntry } from './signature-format.js'

export interface PackOptions {
  /** Output file. @default `<dir>.zip` beside the directory */
  readonly out?: string | undefined
  /** Deflate level 0-9. @default 6 */
  readonly level?: number
  /** Sign the bundle (`--sign`): a signature entry covering every other entry. @default unsigned */
  readonly sign?: SigningOptions | undefined
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
  // a signature left in the source directory belongs to other bytes: never carried over
  files.delete(signatureEntry)
  const zip = new JSZip()
  const date = new Date('2000-01-01T00:00:00Z')
  for (const [entry, content] of files) zip.file(entry, content, { date, createFolders: false })
  if (opts.sign) zip.file(signatureEntry, signatureOf(out, files, opts.sign), { date, createFolders: false })
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

/** The signature entry for `files`, made for the module name `out` will deploy as. */
function signatureOf(out: string, files: Map<string, Buffer>, sign: SigningOptions): Buffer {
  const name = moduleNameOf(out)
  if (!name) throw nyalaError('NYALA_ERR_BUNDLE_NAME', { bundle: out })
  const text = files.get('module.properties')
  if (!text) throw nyalaError('NYALA_ERR_MANIFEST_MISSING', { bundle: out })
  const { manifest } = parseManifest(out, name, text.toString('utf8'))
  return signatureFor(files, name, manifest.version, sign)
}
