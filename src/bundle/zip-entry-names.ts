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
    // bit 11: the name is UTF-8; otherwise CP437, which agrees with latin1 on the ASCII names zips carry
    const utf8 = (data.readUInt16LE(at + 8) & 0x800) !== 0
    names.push(data.toString(utf8 ? 'utf8' : 'latin1', at + 46, end))
    at = end + extraLength + commentLength
  }
  return names
}
