// A minimal zip writer and reader for the fuzzer, independent of the host's reader
// (jszip): the writer can lie (sizes, CRCs, attributes, names), the reader is the
// oracle that an accepted bundle is checked against.
import { crc32, deflateRawSync } from 'node:zlib'

const LOCAL = 0x04034b50
const CENTRAL = 0x02014b50
const END = 0x06054b50

/** Unix file modes, as zip's external attributes carry them in their high 16 bits. */
export const modes = { file: 0o100644, dir: 0o40755, symlink: 0o120777 }

/**
 * Writes a zip. Each entry: { name (string or Buffer), data, method 0|8, mode,
 * and optional lies: crc, csize, usize, localName, flags }. Options: comment,
 * prepend (bytes before the first header), count (the end record's entry count).
 */
export function writeZip(entries, opts = {}) {
  const locals = []
  const centrals = []
  let offset = opts.prepend?.length ?? 0
  for (const e of entries) {
    const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name, 'utf8')
    const localName = e.localName === undefined ? name : Buffer.from(e.localName)
    const method = e.method ?? 8
    // `packed`: bytes deflated ahead (the zip bombs, made once)
    const packed = e.packed ?? (method === 8 ? deflateRawSync(e.data, { level: e.level ?? 6 }) : e.data)
    const crc = e.crc ?? crc32(e.data)
    const csize = e.csize ?? packed.length
    const usize = e.usize ?? e.data.length
    const flags = e.flags ?? (/[^\x20-\x7e]/.test(name.toString('latin1')) ? 0x0800 : 0)
    const local = Buffer.alloc(30)
    local.writeUInt32LE(LOCAL, 0)
    local.writeUInt16LE(20, 4)
    local.writeUInt16LE(flags, 6)
    local.writeUInt16LE(method, 8)
    local.writeUInt16LE(0, 10)
    local.writeUInt16LE(0x2821, 12) // 2000-01-01
    local.writeUInt32LE(crc >>> 0, 14)
    local.writeUInt32LE(csize >>> 0, 18)
    local.writeUInt32LE(usize >>> 0, 22)
    local.writeUInt16LE(localName.length, 26)
    locals.push(local, localName, packed)
    const central = Buffer.alloc(46)
    central.writeUInt32LE(CENTRAL, 0)
    central.writeUInt16LE((3 << 8) | 20, 4) // made by: Unix
    central.writeUInt16LE(20, 6)
    central.writeUInt16LE(flags, 8)
    central.writeUInt16LE(method, 10)
    central.writeUInt16LE(0x2821, 14)
    central.writeUInt32LE(crc >>> 0, 16)
    central.writeUInt32LE(csize >>> 0, 20)
    central.writeUInt32LE(usize >>> 0, 24)
    central.writeUInt16LE(name.length, 28)
    central.writeUInt32LE(((e.mode ?? modes.file) * 0x10000) >>> 0, 38)
    central.writeUInt32LE(offset, 42)
    centrals.push(central, name)
    offset += 30 + localName.length + packed.length
  }
  const cd = Buffer.concat(centrals)
  const comment = Buffer.from(opts.comment ?? '')
  const end = Buffer.alloc(22)
  end.writeUInt32LE(END, 0)
  const count = opts.count ?? entries.length
  end.writeUInt16LE(count & 0xffff, 8)
  end.writeUInt16LE(count & 0xffff, 10)
  end.writeUInt32LE(cd.length, 12)
  end.writeUInt32LE(offset, 16)
  end.writeUInt16LE(comment.length, 20)
  return Buffer.concat([opts.prepend ?? Buffer.alloc(0), ...locals, cd, end, comment])
}

/** The end record's offset, scanning back over at most a maximal comment; -1 if none. */
export function findEnd(buf) {
  for (let at = buf.length - 22; at >= 0 && at >= buf.length - 22 - 0xffff; at--) {
    if (buf.readUInt32LE(at) === END) return at
  }
  return -1
}

/**
 * The central directory as written (no zip64): { end, cdOffset, cdSize, count, records }
 * with each record's offset `at` in the file, or undefined when there is none to read.
 * `shift` is the number of bytes before the archive proper (a prepended stub), as readers
 * that tolerate them compute it.
 */
export function readCentral(buf) {
  const end = findEnd(buf)
  if (end < 0) return undefined
  const count = buf.readUInt16LE(end + 10)
  const cdSize = buf.readUInt32LE(end + 12)
  const cdOffset = buf.readUInt32LE(end + 16)
  const shift = end - cdSize - cdOffset
  const records = []
  let at = cdOffset + Math.max(0, shift)
  while (at + 46 <= end && buf.readUInt32LE(at) === CENTRAL) {
    const nameLength = buf.readUInt16LE(at + 28)
    const extraLength = buf.readUInt16LE(at + 30)
    const commentLength = buf.readUInt16LE(at + 32)
    if (at + 46 + nameLength > buf.length) break
    records.push({
      at,
      madeBy: buf.readUInt16LE(at + 4) >> 8,
      flags: buf.readUInt16LE(at + 8),
      method: buf.readUInt16LE(at + 10),
      crc: buf.readUInt32LE(at + 16),
      csize: buf.readUInt32LE(at + 20),
      usize: buf.readUInt32LE(at + 24),
      mode: buf.readUInt32LE(at + 38) >>> 16,
      external: buf.readUInt32LE(at + 38),
      localOffset: buf.readUInt32LE(at + 42),
      name: buf.subarray(at + 46, at + 46 + nameLength),
    })
    at += 46 + nameLength + extraLength + commentLength
  }
  return { end, cdOffset, cdSize, count, shift, records }
}
