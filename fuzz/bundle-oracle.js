// What an accepted bundle must be, checked against the fuzzer's own zip reader
// (fuzz/zip.js), not the host's: a bundle the host opened may hold no unsafe,
// duplicated or symbolic-link entry, no entry whose bytes differ from its CRC-32,
// nothing past the limits.
import { crc32 } from 'node:zlib'
import { readCentral } from './zip.js'

const typeMask = 0o170000
const regularType = 0o100000
const linkType = 0o120000

function normalize(raw) {
  const name = raw.replace(/\\/g, '/')
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return undefined
  const parts = []
  for (const part of name.split('/')) {
    if (part === '..') return undefined
    if (part !== '' && part !== '.') parts.push(part)
  }
  return parts.join('/')
}

/** The problems of an accepted bundle (empty when it is a valid one). */
export function problemsOf(bundle, bytes, { maxBytes, maxEntries, maxNameBytes }) {
  const problems = []
  const central = readCentral(bytes)
  if (!central) return ['accepted, but the fuzzer finds no end of central directory']
  if (central.records.length > maxEntries)
    problems.push(`${central.records.length} entries accepted (limit ${maxEntries})`)
  const byName = new Map()
  for (const r of central.records) {
    const raw = r.name.toString('utf8')
    if (r.name.length > maxNameBytes) problems.push(`a ${r.name.length}-byte entry name accepted`)
    const name = normalize(raw)
    if (name === undefined) {
      problems.push(`unsafe entry "${raw.slice(0, 80)}" accepted`)
      continue
    }
    if (raw.endsWith('/') || name === '') continue
    if (name.startsWith('META-INF/')) continue
    // the DOS directory bit on an entry named as a file
    if ((r.external & 0x10) !== 0) problems.push(`entry "${name}" flagged as a directory accepted`)
    const type = r.mode & typeMask
    if (r.madeBy === 3 && type !== 0 && type !== regularType) {
      problems.push(
        `${type === linkType ? 'symbolic link' : `entry of type 0o${type.toString(8)}`} "${name}" accepted`,
      )
    }
    if (byName.has(name)) problems.push(`entry "${name.slice(0, 80)}" is in the zip twice`)
    byName.set(name, r)
  }
  let total = 0
  for (const [name, content] of bundle.files) {
    total += content.length
    const r = byName.get(name)
    if (!r) problems.push(`entry "${name.slice(0, 80)}" is not in the central directory`)
    else if (crc32(content) !== r.crc) problems.push(`entry "${name.slice(0, 80)}" does not match its CRC-32`)
  }
  if (total > maxBytes) problems.push(`${total} bytes accepted (limit ${maxBytes})`)
  return problems
}
