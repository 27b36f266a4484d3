import { kMaxLength } from 'node:buffer'
import { inflateRawSync } from 'node:zlib'
import JSZip from 'jszip'
import { nyalaError, reasonOf } from '../errors.js'
import { safeEntryPath } from './entry-path.js'
import { signatureEntry } from './signature-format.js'

/** jszip's documented StreamHelper, missing from its type definitions. */
interface InternalStream {
  on(event: 'data', fn: (chunk: Buffer) => void): InternalStream
  on(event: 'error', fn: (err: unknown) => void): InternalStream
  on(event: 'end', fn: () => void): InternalStream
  pause(): InternalStream
  resume(): InternalStream
}
interface InternalStreamSource {
  internalStream(type: 'nodebuffer'): InternalStream
}

/** jszip's CompressedObject behind an entry of a loaded zip (lib/compressedObject.js), missing from its types. */
interface LoadedEntryData {
  readonly compressedContent?: Uint8Array
  readonly compression?: { readonly magic?: string }
}
const stored = '\x00\x00'
const deflated = '\x08\x00'

/**
 * Inflates one entry with Node's zlib instead of jszip's JavaScript inflater
 * and its stream pipeline: a 3,000-file bundle of npm packages took 600 ms
 * through jszip's streams and 80 ms this way. zlib stops one byte past what
 * is left of `maxBytes` (`maxOutputLength`), so a zip bomb is still stopped
 * while inflating.
 * Returns undefined for an entry jszip holds in another shape, which goes
 * through the stream.
 */
function inflateNatively(
  bundle: string,
  entry: string,
  file: JSZip.JSZipObject,
  maxBytes: number,
  total: number,
): Buffer | undefined {
  const data = (file as unknown as { _data?: LoadedEntryData })._data
  const content = data?.compressedContent
  const magic = data?.compression?.magic
  if (!content || (magic !== stored && magic !== deflated)) return undefined
  const tooLarge = () => nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: maxBytes, entry })
  const budget = maxBytes - total
  let out: Buffer
  try {
    // one byte over the budget is enough to know it is exceeded
    out =
      magic === stored
        ? Buffer.from(content)
        : inflateRawSync(content, { maxOutputLength: Math.max(1, Math.min(budget + 1, kMaxLength)) })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge()
    throw nyalaError('NYALA_ERR_BUNDLE_CORRUPT', { bundle, entry, reason: reasonOf(err) }, err)
  }
  if (out.length > budget) throw tooLarge()
  return out
}

/** Bundle files by entry path (`lib/util.js`), content in memory. */
export type BundleFiles = ReadonlyMap<string, Buffer>

// jar cf writes its own manifest; it is not part of the module. The signature entry is read (openBundle
// takes it out of the files) but never loaded.
const ignoredPrefix = 'META-INF/'

function looksLikeZip(data: Buffer): boolean {
  // local file header, or the end record of an empty archive
  return data.length === 0 || data.subarray(0, 2).toString('latin1') === 'PK'
}

/**
 * Reads every entry of a zip into memory. Entries are inflated one at a time
 * (zlib, or jszip's stream for a shape it does not know) with a running byte
 * count, so a zip bomb is stopped at `maxBytes` while inflating instead of
 * after. An entry that leaves the bundle root is
 * refused before anything is inflated.
 */
export async function readZip(bundle: string, data: Buffer, maxBytes: number): Promise<Map<string, Buffer>> {
  let zip: JSZip
  try {
    zip = await JSZip.loadAsync(data, { createFolders: false })
  } catch (err) {
    const reason = reasonOf(err)
    // a file still being copied has a local header but no central directory yet
    if (looksLikeZip(data) && /end of central directory|corrupted zip/i.test(reason)) {
      throw nyalaError('NYALA_ERR_BUNDLE_TRUNCATED', { bundle, reason }, err)
    }
    throw nyalaError('NYALA_ERR_BUNDLE_NOT_ZIP', { bundle, reason }, err)
  }

  const entries: { entry: string; file: JSZip.JSZipObject }[] = []
  for (const file of Object.values(zip.files)) {
    const original = file.unsafeOriginalName ?? file.name
    const entry = safeEntryPath(original)
    if (entry === undefined) throw nyalaError('NYALA_ERR_BUNDLE_UNSAFE_ENTRY', { bundle, entry: original })
    if (file.dir || entry === '' || entry === 'META-INF') continue
    if (entry.startsWith(ignoredPrefix) && entry !== signatureEntry) continue
    entries.push({ entry, file })
  }

  const files = new Map<string, Buffer>()
  let total = 0
  for (const { entry, file } of entries) {
    const native = inflateNatively(bundle, entry, file, maxBytes, total)
    if (native) {
      total += native.length
      files.set(entry, native)
      continue
    }
    const chunks: Buffer[] = []
    await new Promise<void>((resolve, reject) => {
      // internalStream, not nodeStream: nodeStream wraps jszip's worker in the readable-stream
      // polyfill, whose process.nextTick calls measured slower request handling for the life
      // of the process (bench/dispatch.js)
      const stream = (file as unknown as InternalStreamSource).internalStream('nodebuffer')
      stream.on('data', (chunk: Buffer) => {
        total += chunk.length
        if (total > maxBytes) {
          stream.pause()
          reject(nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: maxBytes, entry }))
          return
        }
        chunks.push(chunk)
      })
      stream.on('error', (err: unknown) =>
        reject(nyalaError('NYALA_ERR_BUNDLE_CORRUPT', { bundle, entry, reason: reasonOf(err) }, err)),
      )
      stream.on('end', () => resolve())
      stream.resume()
    })
    files.set(entry, Buffer.concat(chunks))
  }
  return files
}
