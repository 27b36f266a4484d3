import { kMaxLength } from 'node:buffer'
import { createRequire } from 'node:module'
import { crc32, inflateRawSync } from 'node:zlib'
import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import { safeEntryPath } from './entry-path.js'
import { signatureEntry } from './signature-format.js'
import { type InflatedEntry, sameStored, type ZipRead } from './zip-reuse.js'

/**
 * jszip's zip parser (lib/zipEntries.js), used without JSZip.loadAsync: loadAsync keys
 * entries by name, so a second entry of one name silently replaced the first, and it
 * parses every central record before anything can count them. Its step methods let the
 * records be counted and their names measured before any is parsed. Not in jszip's
 * type definitions; jszip 3 has not changed them since 2017.
 */
interface ZipReader {
  index: number
  setIndex(index: number): void
  skip(n: number): void
  readInt(bytes: number): number
  readData(bytes: number): Uint8Array
  readAndCheckSignature(sig: string): boolean
}
interface ZipEntry {
  /** The name's bytes in the local header. */
  readonly fileName: Uint8Array
  readonly fileNameStr: string
  readonly dir: boolean
  readonly unixPermissions: number | null
  readonly crc32: number
  readonly decompressed: {
    readonly compressedContent: Uint8Array
    readonly compression: { readonly magic: string }
  }
}
interface ZipEntries {
  reader: ZipReader
  readonly files: ZipEntry[]
  readonly centralDirOffset: number
  readEndOfCentral(): void
  readCentralDir(): void
  readLocalFiles(): void
}
const require = createRequire(import.meta.url)
const ZipEntriesClass = require('jszip/lib/zipEntries') as new (opts: object) => ZipEntries
const DataReader = require('jszip/lib/reader/DataReader') as (this: object, data: Buffer) => void
const NodeBufferReader = require('jszip/lib/reader/NodeBufferReader') as { prototype: object }

/**
 * jszip's reader of a Node Buffer, made without its constructor chain: the
 * array reader it runs first rewrites every byte of the zip with itself
 * (`data[i] & 0xFF`, a no-op on a Buffer), 20 ms of a 3 MB bundle's 50 ms
 * read once unchanged entries are no longer inflated (zip-reuse.ts).
 */
function bufferReader(data: Buffer): ZipReader {
  const reader = Object.create(NodeBufferReader.prototype) as ZipReader
  DataReader.call(reader, data)
  return reader
}
const { utf8decode } = require('jszip/lib/utf8') as { utf8decode: (bytes: unknown) => string }
const centralHeader = 'PK\x01\x02'

const stored = '\x00\x00'
const fileTypeMask = 0o170000
const regularFile = 0o100000
/** Unix file types an entry made on Unix may carry in its attributes, other than a regular file. */
const fileTypes = new Map([
  [0o120000, 'symbolic link'],
  [0o040000, 'directory (its name has no trailing /)'],
  [0o010000, 'named pipe'],
  [0o020000, 'character device'],
  [0o060000, 'block device'],
  [0o140000, 'socket'],
])

/** Bundle files by entry path (`lib/util.js`), content in memory. */
export type BundleFiles = ReadonlyMap<string, Buffer>

/** The limits a zip is read under. */
export interface ZipLimits {
  /** Inflated size of all entries together (bundle.max.bytes). */
  readonly maxBytes: number
  /** Entries in the central directory, directories included. */
  readonly maxEntries: number
  /** Bytes of one entry's name. */
  readonly maxNameBytes: number
}

/** What a read may take over from the module's last read, and where it records its own entries. */
export interface ZipReuseOptions {
  /**
   * The last read: an entry stored byte for byte the same is not inflated
   * again, and when `data` is that read's own buffer (the caller found the
   * bytes equal), every entry is taken over without parsing.
   */
  readonly previous?: ZipRead | undefined
  /** Filled with this read's entries, for the next read. */
  readonly record?: Map<string, InflatedEntry> | undefined
}

/**
 * Entries a bundle may hold: more is refused before the central directory is
 * parsed, so a zip of millions of empty entries cannot fill the heap with their
 * records. Above the 65,535 a zip without zip64 can count, because a real
 * `node_modules` can hold that many files (`nyala pack` writes zip64 for them).
 */
export const defaultMaxEntries = 200_000
/** Linux's PATH_MAX: no file system could hold a longer entry path. */
export const defaultMaxNameBytes = 4096

// jar cf writes its own manifest; it is not part of the module. The signature entry is read (openBundle
// takes it out of the files) but never loaded.
const ignoredPrefix = 'META-INF/'

function looksLikeZip(data: Buffer): boolean {
  // local file header, or the end record of an empty archive
  return data.length === 0 || data.subarray(0, 2).toString('latin1') === 'PK'
}

/**
 * Counts the central directory's records and measures their names without
 * parsing them; returns the names (jszip keeps only the local headers' names).
 * A record cut short is left for jszip's parser to report.
 */
function checkCentralDirectory(bundle: string, entries: ZipEntries, limits: ZipLimits): Uint8Array[] {
  const reader = entries.reader
  const start = reader.index
  reader.setIndex(entries.centralDirOffset)
  const names: Uint8Array[] = []
  let count = 0
  try {
    while (reader.readAndCheckSignature(centralHeader)) {
      count++
      if (count > limits.maxEntries) {
        throw nyalaError('NYALA_ERR_BUNDLE_TOO_MANY_ENTRIES', { bundle, limit: limits.maxEntries })
      }
      reader.skip(24)
      const nameBytes = reader.readInt(2)
      const skip = reader.readInt(2) + reader.readInt(2)
      if (nameBytes > limits.maxNameBytes) {
        throw nyalaError('NYALA_ERR_BUNDLE_ENTRY_NAME', {
          bundle,
          bytes: nameBytes,
          limit: limits.maxNameBytes,
        })
      }
      reader.skip(12)
      names.push(reader.readData(nameBytes))
      reader.skip(skip)
    }
  } catch (err) {
    if (isNyalaError(err)) throw err
    // past the end of the data: the parser says it with its own words
  }
  reader.setIndex(start)
  return names
}

/**
 * Whether an entry's local header names the same file as its central record. Readers
 * that list the central names and extract by the local ones see two different bundles
 * (a known way to smuggle a file past a check); only `\` against `/` is let through,
 * which some Windows tools write in one of the two.
 */
function sameName(local: Uint8Array, central: Uint8Array | undefined): boolean {
  if (central === undefined || local.length !== central.length) return false
  for (let i = 0; i < local.length; i++) {
    const a = local[i] === 0x5c ? 0x2f : local[i]
    const b = central[i] === 0x5c ? 0x2f : central[i]
    if (a !== b) return false
  }
  return true
}

/**
 * Inflates one entry with Node's zlib: zlib stops one byte past what is left of
 * `maxBytes` (`maxOutputLength`), so a zip bomb is stopped while inflating, not
 * after. The content must match the entry's CRC-32: a flipped byte in a stored
 * entry, or in deflated data that still inflates, is damage, not a new bundle.
 */
function inflate(bundle: string, entry: string, file: ZipEntry, maxBytes: number, total: number): Buffer {
  const { compressedContent: content, compression } = file.decompressed
  const budget = maxBytes - total
  let out: Buffer
  try {
    // one byte over the budget is enough to know it is exceeded
    out =
      compression.magic === stored
        ? Buffer.from(content)
        : inflateRawSync(content, { maxOutputLength: Math.max(1, Math.min(budget + 1, kMaxLength)) })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: maxBytes, entry })
    }
    throw nyalaError('NYALA_ERR_BUNDLE_CORRUPT', { bundle, entry, reason: reasonOf(err) }, err)
  }
  if (out.length > budget) throw nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: maxBytes, entry })
  const crc = crc32(out)
  if (crc !== file.crc32 >>> 0) {
    throw nyalaError('NYALA_ERR_BUNDLE_CORRUPT', {
      bundle,
      entry,
      reason: `CRC-32 ${crc.toString(16)} does not match ${(file.crc32 >>> 0).toString(16)} in the zip`,
    })
  }
  return out
}

/**
 * Reads every entry of a zip into memory, inflating one at a time with a
 * running byte count. Refused before anything is inflated: more entries than
 * `maxEntries`, a name longer than `maxNameBytes`, an entry that leaves the
 * bundle root, a symbolic link (or any entry that is not a regular file), two entries of one path (readers disagree on
 * which one wins, so neither does).
 */
export function readZip(
  bundle: string,
  data: Buffer,
  limits: ZipLimits,
  reuse: ZipReuseOptions = {},
): Map<string, Buffer> {
  const { previous, record } = reuse
  if (previous !== undefined && previous.data === data) {
    // the same bytes: the same entries, checked and inflated when they were read
    const files = new Map<string, Buffer>()
    for (const [entry, e] of previous.entries) {
      files.set(entry, e.content)
      record?.set(entry, e)
    }
    return files
  }
  const zip = new ZipEntriesClass({ decodeFileName: utf8decode })
  let centralNames: Uint8Array[]
  try {
    zip.reader = bufferReader(data)
    zip.readEndOfCentral()
    centralNames = checkCentralDirectory(bundle, zip, limits)
    zip.readCentralDir()
    zip.readLocalFiles()
  } catch (err) {
    if (isNyalaError(err)) throw err
    const reason = reasonOf(err)
    // a file still being copied has a local header but no end of central directory yet
    if (looksLikeZip(data) && /can't find end of central directory/i.test(reason)) {
      throw nyalaError('NYALA_ERR_BUNDLE_TRUNCATED', { bundle, reason }, err)
    }
    throw nyalaError('NYALA_ERR_BUNDLE_NOT_ZIP', { bundle, reason: zipReason(reason) }, err)
  }

  const entries: { entry: string; file: ZipEntry }[] = []
  const seen = new Set<string>()
  for (const [i, file] of zip.files.entries()) {
    const original = file.fileNameStr
    if (!sameName(file.fileName, centralNames[i])) {
      const central = Buffer.from(centralNames[i] ?? []).toString('utf8')
      throw nyalaError('NYALA_ERR_BUNDLE_CORRUPT', {
        bundle,
        entry: original,
        reason: `the central directory names it "${central}"`,
      })
    }
    const entry = safeEntryPath(original)
    if (entry === undefined) throw nyalaError('NYALA_ERR_BUNDLE_UNSAFE_ENTRY', { bundle, entry: original })
    // a directory is named so (trailing /); an entry flagged as one by its attributes but named
    // as a file would be dropped silently (jszip reads the DOS directory bit), taking its content
    if (/[/\\]$/.test(original) || entry === '' || entry === 'META-INF') continue
    if (file.dir) {
      throw nyalaError('NYALA_ERR_BUNDLE_ENTRY_TYPE', {
        bundle,
        entry: original,
        type: 'directory (its name has no trailing /)',
      })
    }
    if (entry.startsWith(ignoredPrefix) && entry !== signatureEntry) continue
    // jszip only sees a directory by its trailing / or the DOS bit; zip -y stores a link's
    // target as its content: none of these is a file of the module
    const type = (file.unixPermissions ?? 0) & fileTypeMask
    if (type !== 0 && type !== regularFile) {
      const name = fileTypes.get(type) ?? `file of type 0o${type.toString(8)}`
      throw nyalaError('NYALA_ERR_BUNDLE_ENTRY_TYPE', { bundle, entry: original, type: name })
    }
    if (seen.has(entry)) throw nyalaError('NYALA_ERR_BUNDLE_DUPLICATE_ENTRY', { bundle, entry: original })
    seen.add(entry)
    entries.push({ entry, file })
  }

  const files = new Map<string, Buffer>()
  let total = 0
  for (const { entry, file } of entries) {
    const { compressedContent: compressed, compression } = file.decompressed
    const crc = file.crc32 >>> 0
    const before = previous?.entries.get(entry)
    let content: Buffer
    if (before && sameStored(before, compressed, compression.magic, crc)) {
      // the same stored bytes inflate to the same content, which passed its CRC-32 then
      content = before.content
      if (content.length > limits.maxBytes - total)
        throw nyalaError('NYALA_ERR_BUNDLE_TOO_LARGE', { bundle, limit: limits.maxBytes, entry })
    } else content = inflate(bundle, entry, file, limits.maxBytes, total)
    total += content.length
    files.set(entry, content)
    record?.set(entry, { compressed, method: compression.magic, crc, content })
  }
  return files
}

/**
 * jszip's reason in the host's words: its "end of central directory" message ends with a question
 * and a link to its own documentation, which tells an operator nothing about their bundle.
 */
function zipReason(reason: string): string {
  return /can't find end of central directory/i.test(reason)
    ? 'no end of central directory record, which every zip file ends with (expected a .zip or .jar made by zip, jar or nyala pack)'
    : reason
}
