/**
 * An entry as a zip read inflated it: what the next read of the same module
 * compares its entry to.
 */
export interface InflatedEntry {
  /** The entry's data as stored in the zip (a view into that zip's bytes). */
  readonly compressed: Uint8Array
  /** The compression method's two bytes, as jszip gives them. */
  readonly method: string
  readonly crc: number
  readonly content: Buffer
}

export type InflatedEntries = ReadonlyMap<string, InflatedEntry>

/** A module's last read: the zip's bytes, their SHA-256 (hex) and its entries (views into those bytes). */
export interface ZipRead {
  readonly data: Buffer
  readonly hash: string
  readonly entries: InflatedEntries
}

/**
 * The entries of the last zip read of each module, kept so the next read
 * inflates only what changed. A deploy usually changes a module's own files
 * and leaves its `node_modules/` as it was: with a 3,244-file bundle,
 * inflating every entry (a zlib stream per entry, the CRC-32, the garbage)
 * was most of the read. An entry is taken over only when its stored bytes,
 * method and CRC-32 are the same as before, byte for byte: the same input
 * inflates to the same output, so nothing weaker than equality is trusted.
 * A zip whose bytes are all the same as last time (a forced reload, a module
 * deployed again unchanged) takes every entry over without being parsed.
 *
 * Bounded by `maxBytes` of inflated and stored bytes (least recently read
 * module dropped first), since it is a second copy of those files beside the
 * one the serving thread holds.
 */
export class ZipReuse {
  readonly #byModule = new Map<string, { read: ZipRead; bytes: number }>()
  #bytes = 0

  /** @param maxBytes bytes kept in all, inflated and stored. @default 134217728 */
  constructor(readonly maxBytes = 128 * 1024 * 1024) {}

  /** `module`'s last read, if kept. */
  get(module: string): ZipRead | undefined {
    const held = this.#byModule.get(module)
    if (!held) return undefined
    // most recently used last: eviction takes the first
    this.#byModule.delete(module)
    this.#byModule.set(module, held)
    return held.read
  }

  /** Keeps `read` as `module`'s last read (a module larger than the bound is not kept). */
  set(module: string, read: ZipRead): void {
    this.delete(module)
    const bytes = bytesOf(read)
    if (bytes > this.maxBytes) return
    this.#byModule.set(module, { read, bytes })
    this.#bytes += bytes
    for (const [name, held] of this.#byModule) {
      if (this.#bytes <= this.maxBytes) break
      this.#byModule.delete(name)
      this.#bytes -= held.bytes
    }
  }

  /** Whether `module` has a last read kept (without making it the most recently used). */
  has(module: string): boolean {
    return this.#byModule.has(module)
  }

  /**
   * Keeps `read` only if it fits beside what is kept, dropping nothing: for
   * reads made ahead (start-up priming), which must not push out the reads of
   * modules that were reloaded. True when kept.
   */
  setIfRoom(module: string, read: ZipRead): boolean {
    if (this.#byModule.has(module)) return false
    const bytes = bytesOf(read)
    if (this.#bytes + bytes > this.maxBytes) return false
    this.#byModule.set(module, { read, bytes })
    this.#bytes += bytes
    return true
  }

  delete(module: string): void {
    const held = this.#byModule.get(module)
    if (!held) return
    this.#byModule.delete(module)
    this.#bytes -= held.bytes
  }

  /** Bytes kept, inflated and stored. */
  get bytes(): number {
    return this.#bytes
  }
}

/** What a kept read weighs: the zip's bytes and every inflated entry. */
function bytesOf(read: ZipRead): number {
  let bytes = read.data.length
  for (const e of read.entries.values()) bytes += e.content.length
  return bytes
}

/** Whether `before` holds the inflated content of an entry stored as `compressed`, `method`, `crc`. */
export function sameStored(
  before: InflatedEntry,
  compressed: Uint8Array,
  method: string,
  crc: number,
): boolean {
  return (
    before.crc === crc &&
    before.method === method &&
    before.compressed.length === compressed.length &&
    Buffer.compare(before.compressed, compressed) === 0
  )
}
