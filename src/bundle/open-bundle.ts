import { createHash } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { type Manifest, parseManifest } from './manifest.js'
import { moduleNameOf } from './module-name.js'
import { readDirectory } from './read-directory.js'
import {
  type BundleFiles,
  defaultMaxEntries,
  defaultMaxNameBytes,
  readZip,
  type ZipReuseOptions,
} from './read-zip.js'
import { type SignatureInfo, signatureEntry } from './signature-format.js'
import type { TrustPolicy } from './trust-store.js'
import { verifySignature } from './verify-signature.js'
import { zipEntryNames } from './zip-entry-names.js'

/** A bundle read whole into memory and validated; nothing on disk is used after this. */
export interface Bundle {
  /** Module name, from the file name. */
  readonly name: string
  /** Absolute path of the bundle file or directory. */
  readonly file: string
  readonly kind: 'zip' | 'directory'
  readonly manifest: Manifest
  readonly files: BundleFiles
  /** sha256 of the content: a change is a change of content, not of mtime. */
  readonly hash: string
  /** Problems that do not refuse the bundle (unknown manifest keys). */
  readonly warnings: readonly NyalaError[]
  /** The verified signature; `undefined` for an unsigned bundle, or one opened without a trust policy. */
  readonly signature: SignatureInfo | undefined
  /**
   * The files were read, checked and left on the reader's thread: an isolated
   * module's bundle, whose own thread reads them (src/isolate/), so the serving
   * thread never holds (and collects) a big bundle's contents. `files` is empty.
   */
  readonly contentsOmitted?: true | undefined
}

export interface OpenBundleOptions {
  /** Inflated size limit. @default 268435456 */
  readonly maxBytes?: number
  /** Entries in a zip's central directory. @default 200000 */
  readonly maxEntries?: number
  /** Bytes of one entry name in a zip. @default 4096 */
  readonly maxNameBytes?: number
  /** Module name to use instead of the one from the file name (a `.tmp` or staged copy). */
  readonly name?: string
  /** The file's bytes, already read (a reload reads once, opens, and may commit those bytes). */
  readonly data?: Buffer
  /**
   * Signatures to require and keys to trust. Without it a signature entry is
   * left unchecked (as `nyala pack` reads its own output); the host always
   * passes one.
   */
  readonly trust?: TrustPolicy | undefined
  /**
   * The module's last read entries, taken over where stored the same, and
   * where this read records its own (zip-reuse.ts; a zip only).
   */
  readonly reuse?: ZipReuseOptions | undefined
}

const manifestEntry = 'module.properties'

/**
 * The bundle without its files (`contentsOmitted`): for an isolated module, whose
 * own thread reads them, so the serving thread does not keep them alive.
 */
export function withoutContents(bundle: Bundle): Bundle {
  return Object.freeze({ ...bundle, files: new Map<string, Buffer>(), contentsOmitted: true as const })
}

/** Opens, reads and validates a bundle. Every refusal is a NyalaError naming the bundle. */
export async function openBundle(file: string, opts: OpenBundleOptions = {}): Promise<Bundle> {
  const maxBytes = opts.maxBytes ?? 256 * 1024 * 1024
  const bundle = path.resolve(file)
  let isDirectory = false
  if (!opts.data) {
    try {
      isDirectory = (await stat(bundle)).isDirectory()
    } catch (err) {
      throw nyalaError('NYALA_ERR_BUNDLE_READ', { bundle, reason: reasonOf(err) }, err)
    }
  }
  const name = opts.name ?? moduleNameOf(bundle, isDirectory)
  if (!name) throw nyalaError('NYALA_ERR_BUNDLE_NAME', { bundle })

  let files: Map<string, Buffer>
  let rawNames: string[] | undefined
  const hash = createHash('sha256')
  let digest: string | undefined
  if (isDirectory) {
    files = await readDirectory(bundle, bundle, maxBytes)
    for (const [entry, content] of files) hash.update(entry).update('\0').update(content).update('\0')
  } else {
    let data: Buffer
    try {
      data = opts.data ?? (await readFile(bundle))
    } catch (err) {
      throw nyalaError('NYALA_ERR_BUNDLE_READ', { bundle, reason: reasonOf(err) }, err)
    }
    // the module's last read, of these very bytes (zip-reuse.ts): its digest is theirs
    const last = opts.reuse?.previous
    if (last !== undefined && last.data === data) digest = last.hash
    else hash.update(data)
    files = readZip(
      bundle,
      data,
      {
        maxBytes,
        maxEntries: opts.maxEntries ?? defaultMaxEntries,
        maxNameBytes: opts.maxNameBytes ?? defaultMaxNameBytes,
      },
      opts.reuse,
    )
    if (opts.trust && files.has(signatureEntry)) rawNames = zipEntryNames(data)
  }
  const signatureBytes = files.get(signatureEntry)
  files.delete(signatureEntry)

  const manifestText = files.get(manifestEntry)
  if (!manifestText) throw nyalaError('NYALA_ERR_MANIFEST_MISSING', { bundle })
  const { manifest, warnings } = parseManifest(bundle, name, manifestText.toString('utf8'))
  if (!files.has(manifest.main)) throw nyalaError('NYALA_ERR_MAIN_MISSING', { bundle, entry: manifest.main })
  // before any code of the bundle is compiled: the syntax check and the loader come after this
  const signature = opts.trust
    ? verifySignature(
        {
          bundle,
          name,
          version: manifest.version,
          files,
          signature: signatureBytes,
          rawNames,
          unlisted: signatureBytes !== undefined && !isDirectory && rawNames === undefined,
        },
        opts.trust,
      )
    : undefined

  return Object.freeze({
    name,
    file: bundle,
    kind: isDirectory ? 'directory' : 'zip',
    manifest,
    files,
    hash: digest ?? hash.digest('hex'),
    warnings: Object.freeze(warnings),
    signature,
  })
}
