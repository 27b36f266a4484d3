// Mutated bundles: each mutation kind takes a valid base bundle (its bytes as `nyala pack`
// or `zip` wrote them, or its entries to rebuild) and breaks it one way.
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib'
import { manifestKeys } from '../dist/bundle/manifest.js'
import { modes, readCentral, writeZip } from './zip.js'

/** The entries of a base bundle, for the mutations that rebuild a zip. */
export function entriesOf(bytes) {
  const central = readCentral(bytes)
  const out = []
  for (const r of central?.records ?? []) {
    if (r.name.at(-1) === 0x2f) continue // a directory entry
    const nameLength = bytes.readUInt16LE(r.localOffset + 26)
    const extraLength = bytes.readUInt16LE(r.localOffset + 28)
    const start = r.localOffset + 30 + nameLength + extraLength
    const packed = bytes.subarray(start, start + r.csize)
    out.push({
      name: r.name.toString('utf8'),
      data: r.method === 8 ? inflateRawSync(packed) : Buffer.from(packed),
    })
  }
  return out
}

const interesting32 = [0, 1, 0x7f, 0xff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]
const interesting16 = [0, 1, 0x7f, 0xff, 0x7fff, 0x8000, 0xfffe, 0xffff]

const traversals = [
  '../evil.js',
  '../../../../../../etc/passwd',
  '/etc/passwd',
  '/abs.js',
  'C:/windows/x.js',
  'C:\\windows\\x.js',
  'a/../../b.js',
  'a\\..\\..\\b.js',
  '..',
  './../x.js',
  'lib/../../x.js',
  '\\\\server\\share\\x.js',
  'lib/..\\..\\x.js',
]
const duplicateSpellings = (name) => [
  name,
  `./${name}`,
  name.replace('/', '//'),
  name.replace('/', '\\'),
  `${name}`,
]

function setField(buf, at, width, rng) {
  if (at + width > buf.length) return
  if (width === 4) {
    const old = buf.readUInt32LE(at)
    const v = rng.weighted([
      [3, rng.pick(interesting32)],
      [2, (old + rng.range(-16, 16)) >>> 0],
      [1, buf.length + rng.range(-64, 64)],
      [1, rng.int(2 ** 32)],
    ])
    buf.writeUInt32LE(v >>> 0, at)
  } else {
    const old = buf.readUInt16LE(at)
    const v = rng.weighted([
      [3, rng.pick(interesting16)],
      [2, (old + rng.range(-8, 8)) & 0xffff],
      [1, rng.int(2 ** 16)],
    ])
    buf.writeUInt16LE(v & 0xffff, at)
  }
}

function manifestGarbage(rng) {
  const line = () => {
    const key = rng.pick([...manifestKeys, 'x'])
    const value = rng.weighted([
      [2, rng.bytes(rng.range(0, 40)).toString('latin1')],
      [1, 'a'.repeat(rng.range(1000, 200_000))],
      [1, rng.pick(traversals)],
      [1, '\\u00zz\\'],
      [1, `${'\\\n'.repeat(rng.range(1, 500))}`],
      [1, '\u0000\u0000'],
      [1, rng.pick(['1.0.0', 'index.js', '/', '//', '/a/../b', 'core,core', 'true', 'TRUE', ''])],
    ])
    return `${rng.chance(0.1) ? '\ufeff' : ''}${key}${rng.pick(['=', ':', ' ', '=='])}${value}`
  }
  return rng.weighted([
    [1, rng.bytes(rng.range(0, 4096))],
    [3, Buffer.from(Array.from({ length: rng.range(1, 30) }, line).join(rng.pick(['\n', '\r\n', '\r'])))],
    [1, Buffer.from(Array.from({ length: rng.range(1000, 20_000) }, (_, i) => `k${i}=${i}`).join('\n'))],
    [1, Buffer.from(`version=1.0.0\nmain=${rng.pick(traversals)}\n`)],
  ])
}

/**
 * Zip bombs, deflated once: zeros of a third of the limit (`piece`, a few of them fit), and
 * of 1.5 times, 16 times and (at most 64 MiB) more than the limit (`whole`).
 */
export function makeBombs(maxBytes) {
  const bomb = (usize) => {
    const data = Buffer.alloc(usize)
    return { packed: deflateRawSync(data, { level: 9 }), crc: crc32(data), usize }
  }
  return {
    piece: bomb(Math.floor(maxBytes / 3)),
    whole: [
      bomb(Math.floor(maxBytes * 1.5)),
      bomb(maxBytes * 16),
      bomb(Math.max(maxBytes * 17, 64 * 1024 * 1024)),
    ],
  }
}

/**
 * The mutation kinds, each (rng, ctx) -> Buffer. `ctx`: { bases: [{ bytes, entries }],
 * maxBytes, maxEntries, maxNameBytes }.
 */
export const mutations = {
  truncate(rng, { bases }) {
    const { bytes } = rng.pick(bases)
    const at = rng.weighted([
      [2, rng.int(bytes.length)],
      [1, bytes.length - rng.range(1, Math.min(64, bytes.length))],
    ])
    return Buffer.from(bytes.subarray(0, at))
  },
  flip(rng, { bases }) {
    const bytes = Buffer.from(rng.pick(bases).bytes)
    for (let n = rng.range(1, 8); n > 0; n--) bytes[rng.int(bytes.length)] ^= rng.range(1, 255)
    return bytes
  },
  header(rng, { bases }) {
    // a field of a central record, a local header or the end record
    const bytes = Buffer.from(rng.pick(bases).bytes)
    const central = readCentral(bytes)
    if (!central || central.records.length === 0) return bytes
    for (let n = rng.range(1, 3); n > 0; n--) {
      const r = rng.pick(central.records)
      const [base, fields] = rng.pick([
        [
          central.end,
          [
            [8, 2],
            [10, 2],
            [12, 4],
            [16, 4],
            [20, 2],
          ],
        ],
        [
          r.at,
          [
            [4, 2],
            [8, 2],
            [10, 2],
            [16, 4],
            [20, 4],
            [24, 4],
            [28, 2],
            [30, 2],
            [32, 2],
            [38, 4],
            [42, 4],
          ],
        ],
        [
          r.localOffset,
          [
            [6, 2],
            [8, 2],
            [14, 4],
            [18, 4],
            [22, 4],
            [26, 2],
            [28, 2],
          ],
        ],
      ])
      const [offset, width] = rng.pick(fields)
      setField(bytes, base + offset, width, rng)
    }
    return bytes
  },
  directory(rng, { bases }) {
    // the end record's offset, size or count of the central directory
    const bytes = Buffer.from(rng.pick(bases).bytes)
    const central = readCentral(bytes)
    if (!central) return bytes
    const [offset, width] = rng.pick([
      [8, 2],
      [10, 2],
      [12, 4],
      [16, 4],
      [20, 2],
    ])
    setField(bytes, central.end + offset, width, rng)
    return bytes
  },
  splice(rng, { bases }) {
    const a = rng.pick(bases).bytes
    const b = rng.pick(bases).bytes
    return rng.weighted([
      [1, Buffer.concat([rng.bytes(rng.range(1, 300)), a])],
      [1, Buffer.concat([a, rng.bytes(rng.range(1, 300))])],
      [1, Buffer.concat([a, b])],
      [1, Buffer.concat([a.subarray(0, rng.int(a.length)), b.subarray(rng.int(b.length))])],
    ])
  },
  duplicate(rng, { bases }) {
    const entries = [...rng.pick(bases).entries]
    const victim = rng.pick(entries)
    const evil = {
      name: rng.pick(duplicateSpellings(victim.name)),
      data: Buffer.from('module.exports = 1\n'),
    }
    if (rng.chance(0.5)) entries.push(evil)
    else entries.unshift(evil)
    return writeZip(entries.map((e) => ({ ...e, method: rng.pick([0, 8]) })))
  },
  hugeName(rng, { bases, maxNameBytes }) {
    const entries = [...rng.pick(bases).entries]
    const length = rng.weighted([
      [1, rng.range(maxNameBytes - 2, maxNameBytes + 2)],
      [2, rng.range(1000, 0xffff)],
    ])
    const unit = rng.pick(['a', 'é', '\u{1f600}', 'ab/'])
    const name = unit.repeat(Math.ceil(length / Buffer.byteLength(unit)))
    const bytes = Buffer.from(name).subarray(0, Math.min(length, 0xffff))
    entries.push({ name: bytes, data: Buffer.from('x') })
    return writeZip(entries)
  },
  symlink(rng, { bases }) {
    const entries = rng.pick(bases).entries.map((e) => ({ ...e }))
    if (rng.chance(0.5)) {
      const victim = rng.pick(entries)
      victim.mode = modes.symlink
      victim.data = Buffer.from(rng.pick(['/etc/passwd', '../../../etc/shadow', 'lib/util.js', victim.name]))
    } else {
      entries.push({
        name: rng.pick(['link', 'lib/link.js', 'data/x']),
        mode: modes.symlink,
        data: Buffer.from('/etc/passwd'),
      })
    }
    return writeZip(entries)
  },
  traversal(rng, { bases }) {
    const entries = rng.pick(bases).entries.map((e) => ({ ...e }))
    const name = rng.pick(traversals)
    if (rng.chance(0.5)) entries.push({ name, data: Buffer.from('module.exports = 1\n') })
    else {
      const main = entries.find((e) => e.name === 'index.js')
      if (main) main.name = name
      const manifest = entries.find((e) => e.name === 'module.properties')
      if (manifest) manifest.data = Buffer.from(`version=1.0.0\nmain=${name}\n`)
    }
    return writeZip(entries)
  },
  deep(rng, { bases }) {
    const entries = [...rng.pick(bases).entries]
    const depth = rng.weighted([
      [1, rng.range(50, 500)],
      [1, rng.range(5000, 32_000)],
    ])
    const name = `${rng.pick(['a/', 'ab/', './', 'a//'])}`.repeat(depth).slice(0, 0xfff0) + 'x.js'
    entries.push({ name, data: Buffer.from('module.exports = 1\n') })
    return writeZip(entries)
  },
  bomb(rng, { bases, bombs }) {
    // high compression ratios: one entry, many entries, or sizes that lie
    const entries = [...rng.pick(bases).entries]
    const kind = rng.pick(['one', 'many', 'lie'])
    const bomb = kind === 'many' ? bombs.piece : rng.pick(bombs.whole)
    const entry = (name) => ({ name, packed: bomb.packed, crc: bomb.crc, usize: bomb.usize })
    if (kind === 'one') entries.push(entry('data/bomb.bin'))
    else if (kind === 'lie') entries.push({ ...entry('data/bomb.bin'), usize: rng.pick([0, 10, 1000]) })
    else for (let i = 0; i < rng.range(2, 24); i++) entries.push(entry(`data/${i}.bin`))
    return writeZip(entries)
  },
  manifest(rng, { bases }) {
    const entries = rng.pick(bases).entries.map((e) => ({ ...e }))
    const manifest = entries.find((e) => e.name === 'module.properties')
    if (manifest) manifest.data = manifestGarbage(rng)
    return writeZip(entries)
  },
  manyEntries(rng, { bases, maxEntries }) {
    const entries = [...rng.pick(bases).entries]
    const count = rng.weighted([
      [2, rng.range(maxEntries - 8, maxEntries + 8)],
      [1, rng.range(maxEntries, maxEntries * 4)],
    ])
    for (let i = entries.length; i < count; i++)
      entries.push({ name: `f/${i}`, data: Buffer.alloc(0), method: 0 })
    return writeZip(entries, { count: rng.chance(0.3) ? rng.int(0x10000) : undefined })
  },
  method(rng, { bases }) {
    // unknown compression methods, the encryption flag, directory attributes on a file, zip64 markers
    const entries = rng.pick(bases).entries.map((e) => ({ ...e }))
    const victim = rng.pick(entries)
    const how = rng.pick(['method', 'encrypted', 'dir', 'zip64', 'crc'])
    if (how === 'method') victim.method = rng.pick([1, 9, 12, 14, 93, 99, 0xffff])
    if (how === 'method' && victim.method !== 0 && victim.method !== 8) victim.data = Buffer.from(victim.data)
    if (how === 'encrypted') victim.flags = 1
    if (how === 'dir') victim.mode = modes.dir
    if (how === 'zip64') victim[rng.pick(['csize', 'usize'])] = 0xffffffff
    if (how === 'crc') victim.crc = rng.int(2 ** 32)
    return writeZip(
      entries.map((e) => (e.method === undefined || e.method === 0 || e.method === 8 ? e : { ...e })),
    )
  },
}

export const mutationKinds = Object.keys(mutations)

/** Case `index`: which kind (round robin, so every kind gets its share) and its bytes. */
export function bundleCase(rng, index, ctx) {
  const kind = mutationKinds[index % mutationKinds.length]
  return { kind, bytes: mutations[kind](rng, ctx) }
}
