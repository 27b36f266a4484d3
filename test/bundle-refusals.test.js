// Refusals of damaged or hostile zips found by fuzzing (npm run fuzz, fuzz/bundle-cases.js):
// each was loaded, hung or was misreported before. Zips come from `zip` (symbolic links,
// stored entries) or from the fuzzer's own writer (fuzz/zip.js), which can write what zip
// tools will not: two entries of one name, names that differ between the local header and
// the central directory, an end record that announces zip64.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { parseProperties } from '../dist/config/read-properties.js'
import { BundleReader } from '../dist/loader/bundle-reader.js'
import { readCentral, writeZip } from '../fuzz/zip.js'
import { manifest, writeFiles } from './helpers.js'

const run = promisify(execFile)
const main = 'module.exports = { register () {} }\n'

async function tempDir(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nyala-refusals-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const entries = (extra = []) => [
  { name: 'module.properties', data: Buffer.from(manifest()) },
  { name: 'index.js', data: Buffer.from(main) },
  ...extra,
]

async function refusal(data, opts = {}) {
  try {
    await openBundle('/fuzz/m.zip', { data, name: 'm', ...opts })
  } catch (err) {
    return err
  }
  assert.fail('the bundle was accepted')
}

test('a valid zip from the fuzzer writer opens (the refusals below are the damage, not the writer)', async () => {
  const bundle = await openBundle('/fuzz/m.zip', { data: writeZip(entries()), name: 'm' })
  assert.deepEqual([...bundle.files.keys()], ['module.properties', 'index.js'])
})

test('two entries of one path are refused, whichever comes first and however the second is spelled', async () => {
  for (const name of ['index.js', './index.js', 'lib//x.js', 'lib\\x.js']) {
    const lib = { name: 'lib/x.js', data: Buffer.from('exports.a = 1\n') }
    const evil = { name, data: Buffer.from('exports.a = 2\n') }
    for (const list of [entries([lib, evil]), [evil, ...entries([lib])]]) {
      const err = await refusal(writeZip(list))
      assert.equal(err.code, 'NYALA_ERR_BUNDLE_DUPLICATE_ENTRY', name)
      assert.match(err.message, /second entry of the same path/)
    }
  }
})

test('a symbolic link stored by zip -y is refused; zip without -y stores the file and is accepted', async (t) => {
  const dir = await tempDir(t)
  const src = await writeFiles(path.join(dir, 'm'), { 'module.properties': manifest(), 'index.js': main })
  await symlink('/etc/passwd', path.join(src, 'passwd'))
  await run('zip', ['-q', '-r', '-y', path.join(dir, 'links.zip'), '.'], { cwd: src })
  const err = await refusal(await readFile(path.join(dir, 'links.zip')))
  assert.equal(err.code, 'NYALA_ERR_BUNDLE_ENTRY_TYPE')
  assert.match(err.message, /"passwd" is a symbolic link, expected a regular file/)
  await run('zip', ['-q', '-r', path.join(dir, 'followed.zip'), '.'], { cwd: src })
  const bundle = await openBundle(path.join(dir, 'followed.zip'), { name: 'm' })
  assert.ok(bundle.files.has('passwd'))
})

test('an entry whose Unix attributes say directory, pipe or device is refused; a plain file is not', async () => {
  for (const [mode, type] of [
    [0o40755, /directory/],
    [0o10644, /named pipe/],
    [0o20644, /character device/],
  ]) {
    const err = await refusal(writeZip(entries([{ name: 'lib/x.js', data: Buffer.from('x'), mode }])))
    assert.equal(err.code, 'NYALA_ERR_BUNDLE_ENTRY_TYPE')
    assert.match(err.message, type)
  }
  // the DOS directory bit on a file's name dropped the file silently (jszip reads it as a directory)
  const dos = writeZip(entries([{ name: 'lib/x.js', data: Buffer.from('x') }]))
  const record = readCentral(dos).records.find((r) => r.name.toString() === 'lib/x.js')
  dos.writeUInt32LE((record.external | 0x10) >>> 0, record.at + 38)
  const flagged = await refusal(dos)
  assert.equal(flagged.code, 'NYALA_ERR_BUNDLE_ENTRY_TYPE')
  assert.match(flagged.message, /"lib\/x.js" is a directory \(its name has no trailing \/\)/)
  const bundle = await openBundle('/fuzz/m.zip', {
    data: writeZip(entries([{ name: 'lib/x.js', data: Buffer.from('x'), mode: 0o100600 }])),
    name: 'm',
  })
  assert.ok(bundle.files.has('lib/x.js'))
})

test('a flipped byte in a stored entry does not match its CRC-32 and is refused', async (t) => {
  const dir = await tempDir(t)
  const src = await writeFiles(path.join(dir, 'm'), { 'module.properties': manifest(), 'index.js': main })
  await run('zip', ['-q', '-0', '-r', path.join(dir, 'stored.zip'), '.'], { cwd: src })
  const data = await readFile(path.join(dir, 'stored.zip'))
  const at = data.indexOf('register')
  assert.ok(at > 0)
  data[at] ^= 0x20 // Register: still valid JavaScript, only the CRC tells
  const err = await refusal(data)
  assert.equal(err.code, 'NYALA_ERR_BUNDLE_CORRUPT')
  assert.match(err.message, /entry "index.js".*CRC-32 [0-9a-f]+ does not match/)
})

test('an entry whose local header names another file than the central directory is refused', async () => {
  const err = await refusal(
    writeZip(entries([{ name: 'lib/a.js', localName: 'lib/b.js', data: Buffer.from('exports.a = 1\n') }])),
  )
  assert.equal(err.code, 'NYALA_ERR_BUNDLE_CORRUPT')
  assert.match(err.message, /the central directory names it "lib\/a.js"/)
  // a Windows tool's backslash in one of the two is the same name
  const bundle = await openBundle('/fuzz/m.zip', {
    data: writeZip(entries([{ name: 'lib\\a.js', localName: 'lib/a.js', data: Buffer.from('x') }])),
    name: 'm',
  })
  assert.ok(bundle.files.has('lib/a.js'))
})

test('more entries than the limit, or a name longer than the limit, are refused before anything is inflated', async () => {
  const many = entries(Array.from({ length: 9 }, (_, i) => ({ name: `f/${i}`, data: Buffer.from('x') })))
  assert.equal(
    (await openBundle('/fuzz/m.zip', { data: writeZip(many), name: 'm', maxEntries: 11 })).files.size,
    11,
  )
  const err = await refusal(writeZip(many), { maxEntries: 10 })
  assert.equal(err.code, 'NYALA_ERR_BUNDLE_TOO_MANY_ENTRIES')
  assert.match(err.message, /more than 10 entries/)

  // the default: 4096 bytes, PATH_MAX
  const long = (n) =>
    writeZip(entries([{ name: `${'a/'.repeat(n / 2 - 1)}x.js`.slice(0, n), data: Buffer.from('x') }]))
  assert.ok((await openBundle('/fuzz/m.zip', { data: long(4096), name: 'm' })).files.size === 3)
  const named = await refusal(long(4098))
  assert.equal(named.code, 'NYALA_ERR_BUNDLE_ENTRY_NAME')
  assert.match(named.message, /an entry name of 4098 bytes, expected at most 4096/)
})

test('the reader thread refuses by the same limits', async (t) => {
  const dir = await tempDir(t)
  const file = path.join(dir, 'm.zip')
  const many = entries(Array.from({ length: 9 }, (_, i) => ({ name: `f/${i}`, data: Buffer.from('x') })))
  await import('node:fs/promises').then((fs) => fs.writeFile(file, writeZip(many)))
  const reader = new BundleReader()
  t.after(() => reader.close())
  const read = await reader.read(file, { maxBytes: 1 << 20, maxEntries: 10, name: 'm' })
  assert.equal(read.ok, false)
  assert.equal(read.error.code, 'NYALA_ERR_BUNDLE_TOO_MANY_ENTRIES')
  assert.equal((await reader.read(file, { maxBytes: 1 << 20, name: 'm' })).ok, true)
})

test('a zip whose end record announces zip64 without one is not zip (not truncated, which is retried)', async () => {
  const data = writeZip(entries())
  const { end } = readCentral(data)
  data.writeUInt16LE(0xffff, end + 8)
  data.writeUInt16LE(0xffff, end + 10)
  const err = await refusal(data)
  assert.equal(err.code, 'NYALA_ERR_BUNDLE_NOT_ZIP')
  assert.match(err.message, /ZIP64/)
  // a file cut before its end record is still a truncated one
  assert.equal((await refusal(writeZip(entries()).subarray(0, 60))).code, 'NYALA_ERR_BUNDLE_TRUNCATED')
})

test('a manifest value of megabytes is named by its first 200 characters and its length', async () => {
  const data = writeZip([
    { name: 'module.properties', data: Buffer.from(`version=${'v'.repeat(2_000_000)}!\n`) },
    { name: 'index.js', data: Buffer.from(main) },
  ])
  const err = await refusal(data)
  assert.equal(err.code, 'NYALA_ERR_MANIFEST_INVALID')
  assert.ok(err.message.length < 600)
  assert.match(err.message, /v{200}… \(2000001 characters\)/)
})

test('properties: long lines with a line separator or runs of spaces parse (they backtracked for minutes)', {
  timeout: 60_000,
}, () => {
  // a `\r` after the `=` made properties-reader's regular expression try every shorter key
  const cr = parseProperties(`a=1\rb=${'x'.repeat(300_000)}\r${'y'.repeat(300_000)}\nc=3`)
  assert.equal(cr.get('a'), '1')
  assert.equal(cr.get('b')?.length, 300_000)
  assert.equal(cr.get('c'), '3')
  // a U+2028 after the `=` drops the line, as properties-reader always did, without the backtracking
  const ls = parseProperties(`a=1\nb=${'x'.repeat(300_000)}\u2028y\nc=3`)
  assert.deepEqual([...ls.keys()], ['a', 'c'])
  // `\s+#` over a long run of spaces not followed by `#`
  const spaces = parseProperties(`a=x${' '.repeat(300_000)}y # comment\nb=2`)
  assert.equal(spaces.get('a'), `x${' '.repeat(300_000)}y`)
  assert.equal(spaces.get('b'), '2')
})

test('properties: a comment after whitespace is cut as before; CRLF and lone CR end lines as in Java', () => {
  const p = parseProperties('main=index.js   # default\r\nprefix=/a#b\rx=#y\n')
  assert.deepEqual(Object.fromEntries(p), { main: 'index.js', prefix: '/a#b', x: '#y' })
})
