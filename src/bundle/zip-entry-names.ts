import { crc32 } from 'node:zlib'

/**
 * The name in an Info-ZIP Unicode Path extra field (0x7075), read as jszip reads it: the last
 * such field counts, and only while its CRC matches the raw name.
 */
function unicodePath(data: Buffer, start: number, end: number, raw: Buffer): string | undefined {
  let field: Buffer | undefined
  const stop = Math.min(end, data.length)
  for (let at = start; at + 4 < stop; ) {
    const id = data.readUInt16LE(at)
    const length = data.readUInt16LE(at + 2)
    if (id === 0x7075) field = data.subarray(at + 4, at + 4 + length)
    at += 4 + length
  }
  if (!field || field.length < 5 || field[0] !== 1 || field.readUInt32LE(1) !== crc32(raw)) return undefined
  return field.subarray(5).toString('utf8')
}

/**
 * The entry names of a zip as its central directory lists them, duplicates
 * included. A zip reader keeps one entry per name (jszip keeps the last), so a
 * second entry of the same name is invisible after reading: the classic way
 * to show a verifier one file and a loader another. Only signature checks need
 * this list; `undefined` for an archive this small parser does not follow
 * (a broken zip64 record), which the caller treats as unverifiable.
 */
export function zipEntryNames(data: Buffer): string[] | undefined {
  const eocdSignature = 0x06054b50
  const minEocd = 22
  // the end record sits in the last 22 bytes plus a comment of up to 65535
  const floor = Math.max(0, data.length - minEocd - 0xffff)
  let eocd = -1
  for (let at = data.length - minEocd; at >= floor; at--) {
    if (data.readUInt32LE(at) === eocdSignature) {
      eocd = at
      break
    }
  }
  if (eocd < 0) return undefined
  let count = data.readUInt16LE(eocd + 10)
  let offset = data.readUInt32LE(eocd + 16)
  if (count === 0xffff || offset === 0xffffffff) {
    // zip64 (what nyala pack writes from 65,535 entries on): the locator just before the end
    // record gives the zip64 end record, which holds the real count and directory offset
    const locator = eocd - 20
    if (locator < 0 || data.readUInt32LE(locator) !== 0x07064b50) return undefined
    const record = Number(data.readBigUInt64LE(locator + 8))
    if (record + 56 > locator || data.readUInt32LE(record) !== 0x06064b50) return undefined
    count = Number(data.readBigUInt64LE(record + 32))
    offset = Number(data.readBigUInt64LE(record + 48))
  }
  const names: string[] = []
  let at = offset
  for (let i = 0; i < count; i++) {
    if (at + 46 > data.length || data.readUInt32LE(at) !== 0x02014b50) return undefined
    const nameLength = data.readUInt16LE(at + 28)
    const extraLength = data.readUInt16LE(at + 30)
    const commentLength = data.readUInt16LE(at + 32)
    const end = at + 46 + nameLength
    if (end > data.length) return undefined
    // decoded as jszip decodes them, or a name it merges with another would not be seen twice:
    // UTF-8 with or without bit 11 (its default), or the Info-ZIP Unicode Path field when present
    const raw = data.subarray(at + 46, end)
    const flagged = (data.readUInt16LE(at + 8) & 0x800) !== 0
    names.push((flagged ? undefined : unicodePath(data, end, end + extraLength, raw)) ?? raw.toString('utf8'))
    at = end + extraLength + commentLength
  }
  return names
}
