// The bundle reader (dist/loader/bundle-reader.js): bundles read, inflated, hashed and
// syntax-checked on its worker thread come back as the same bundle openBundle makes on the calling
// thread, and every refusal keeps its NYALA_ERR code and message.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import JSZip from 'jszip'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { packDirectory } from '../dist/bundle/pack.js'
import { BundleReader, bundleReader } from '../dist/loader/bundle-reader.js'
import { checkSyntax } from '../dist/loader/load-module.js'
import { manifest, projectRoot, writeFiles } from './helpers.js'

const maxBytes = 256 * 1024 * 1024

async function tempDir(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nyala-reader-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

async function zipOf(files, out) {
  const zip = new JSZip()
  for (const [name, content] of Object.entries(files)) zip.file(name, content, { createFolders: false })
  await writeFile(out, await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' }))
  return out
}

/** What openBundle on this thread throws for the same file, or undefined. */
async function refusalHere(file, opts) {
  try {
    await openBundle(file, opts)
    return undefined
  } catch (err) {
    return err
  }
}

const plain = (bundle) => ({
  name: bundle.name,
  file: bundle.file,
  kind: bundle.kind,
  manifest: { ...bundle.manifest },
  hash: bundle.hash,
  warnings: bundle.warnings.map((w) => w.toJSON()),
  files: [...bundle.files].map(([entry, content]) => [entry, content.toString('base64')]),
})

test('a zip and a directory read on the worker are the bundles openBundle makes here', async (t) => {
  const dir = await tempDir(t)
  const src = await writeFiles(path.join(dir, 'billing'), {
    'module.properties': manifest({ 'depends-on': 'core', colour: 'blue' }),
    'index.js': 'module.exports = { register () {} }\n',
    'lib/a.js': 'exports.a = 1\n',
    'data/blob.bin': Buffer.from([0, 1, 2, 255]),
    'empty.txt': '',
  })
  const zip = await packDirectory(src, { out: path.join(dir, 'billing-1.0.0.zip') })

  const read = await bundleReader.read(zip, { maxBytes })
  assert.equal(read.ok, true)
  assert.deepEqual(plain(read.bundle), plain(await openBundle(zip)))
  assert.equal(read.bundle.name, 'billing')
  assert.ok(Object.isFrozen(read.bundle) && Object.isFrozen(read.bundle.manifest))
  assert.deepEqual(read.data, await readFile(zip), 'the bytes that were read come back for the commit')
  // the unknown key is a warning, rebuilt as a NyalaError on this side
  assert.equal(read.bundle.warnings.length, 1)
  assert.equal(read.bundle.warnings[0].code, 'NYALA_ERR_MANIFEST_INVALID')
  assert.equal(read.bundle.warnings[0].details.key, 'colour')

  const renamed = await bundleReader.read(zip, { maxBytes, name: 'other' })
  assert.equal(renamed.ok && renamed.bundle.name, 'other')

  const fromDir = await bundleReader.read(src, { maxBytes, directory: true })
  assert.equal(fromDir.ok, true)
  assert.equal(fromDir.data, undefined)
  assert.deepEqual(plain(fromDir.bundle), plain(await openBundle(src)))
})

test('stored and deflated entries come back as the bytes that were packed', async (t) => {
  const dir = await tempDir(t)
  const files = {
    'module.properties': manifest(),
    'index.js': 'module.exports = () => {}\n',
    'a.txt': 'a'.repeat(10_000),
    'b.bin': Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
    'empty.txt': '',
  }
  for (const compression of ['STORE', 'DEFLATE']) {
    const zip = new JSZip()
    for (const [name, content] of Object.entries(files)) zip.file(name, content, { compression })
    const file = path.join(dir, `m-${compression}.zip`)
    await writeFile(file, await zip.generateAsync({ type: 'nodebuffer' }))
    for (const bundle of [await openBundle(file), (await bundleReader.read(file, { maxBytes })).bundle]) {
      assert.deepEqual(
        Object.fromEntries([...bundle.files].map(([k, v]) => [k, v.toString('base64')])),
        Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
        compression,
      )
    }
  }
})

test('refusals come back with the code, details and message openBundle gives', async (t) => {
  const dir = await tempDir(t)
  const good = {
    'module.properties': manifest(),
    'index.js': 'module.exports = { register () {} }\n',
    'lib/pad.js': `// ${'x'.repeat(4000)}\n`,
  }
  const whole = await zipOf(good, path.join(dir, 'whole.zip'))
  const bytes = await readFile(whole)
  const truncated = path.join(dir, 'trunc.zip')
  await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)))
  const notZip = path.join(dir, 'notzip.zip')
  await writeFile(notZip, 'plain text, not an archive\n'.repeat(20))
  const cases = [
    { file: truncated, code: 'NYALA_ERR_BUNDLE_TRUNCATED' },
    { file: notZip, code: 'NYALA_ERR_BUNDLE_NOT_ZIP' },
    {
      file: await zipOf({ ...good, '../evil.js': 'x\n' }, path.join(dir, 'dotdot.zip')),
      code: 'NYALA_ERR_BUNDLE_UNSAFE_ENTRY',
    },
    {
      file: await zipOf({ ...good, 'zeros.bin': Buffer.alloc(4 * 1024 * 1024) }, path.join(dir, 'bomb.zip')),
      code: 'NYALA_ERR_BUNDLE_TOO_LARGE',
      maxBytes: 1024 * 1024,
    },
    {
      file: await zipOf({ 'index.js': good['index.js'] }, path.join(dir, 'nomanifest.zip')),
      code: 'NYALA_ERR_MANIFEST_MISSING',
    },
  ]
  for (const c of cases) {
    const opts = { maxBytes: c.maxBytes ?? maxBytes }
    const read = await bundleReader.read(c.file, opts)
    assert.equal(read.ok, false, c.code)
    assert.equal(read.error.code, c.code)
    assert.equal(read.bytesRead, (await readFile(c.file)).length)
    const here = await refusalHere(c.file, opts)
    assert.equal(here?.code, c.code, `openBundle here refuses ${c.file} the same way`)
    assert.equal(read.error.message, here.message)
    assert.deepEqual(read.error.details, here.details)
  }

  const missing = await bundleReader.read(path.join(dir, 'gone.zip'), { maxBytes })
  assert.equal(missing.ok, false)
  assert.equal(missing.error.code, 'ENOENT', 'a vanished file keeps its errno code')
  assert.equal(missing.bytesRead, undefined)
})

test("the worker's syntax check is the verdict checkSyntax reports", async (t) => {
  const dir = await tempDir(t)
  const src = await writeFiles(path.join(dir, 'broken'), {
    'module.properties': manifest(),
    'index.js': 'module.exports = { register () {} }\n',
    'lib/bad.js': 'const a = 1\nconst = 2\n',
  })
  const zip = await packDirectory(src, { out: path.join(dir, 'broken.zip') })
  const read = await bundleReader.read(zip, { maxBytes })
  assert.equal(read.ok, true, 'a syntax error does not refuse the read: the reload transaction decides')
  const here = await openBundle(zip)
  assert.throws(() => checkSyntax(here), { code: 'NYALA_ERR_MODULE_SYNTAX' })
  let expected
  try {
    checkSyntax(here)
  } catch (err) {
    expected = err
  }
  assert.throws(
    () => checkSyntax(read.bundle),
    (err) => err.code === 'NYALA_ERR_MODULE_SYNTAX' && err.message === expected.message,
  )
  assert.match(expected.details.location, /^lib\/bad\.js:2$/)

  await writeFile(path.join(src, 'lib', 'bad.js'), 'const a = 1\n')
  const fixed = await packDirectory(src, { out: path.join(dir, 'fixed.zip') })
  const ok = await bundleReader.read(fixed, { maxBytes })
  assert.equal(ok.ok, true)
  assert.doesNotThrow(() => checkSyntax(ok.bundle))
})

test('closing fails the reads in flight; the next read starts a new worker', async (t) => {
  const dir = await tempDir(t)
  const big = {}
  for (let i = 0; i < 400; i++) big[`lib/f${i}.js`] = `exports.v = ${i}\n// ${'y'.repeat(2000)}\n`
  const zip = await zipOf(
    { 'module.properties': manifest(), 'index.js': 'module.exports = () => {}\n', ...big },
    path.join(dir, 'big.zip'),
  )
  const reader = new BundleReader()
  t.after(() => reader.close())
  await reader.warm()
  const pending = reader.read(zip, { maxBytes })
  await reader.close()
  const failed = await pending
  assert.equal(failed.ok, false)
  assert.equal(failed.error.code, 'NYALA_ERR_BUNDLE_READ')
  assert.match(failed.error.message, /big\.zip: cannot read bundle: the bundle reader was closed/)

  const again = await reader.read(zip, { maxBytes })
  assert.equal(again.ok, true)
  assert.equal(again.bundle.files.size, 402)
})

test('an idle bundle reader does not keep the process alive', { timeout: 30_000 }, async (t) => {
  const dir = await tempDir(t)
  const src = await writeFiles(path.join(dir, 'm'), {
    'module.properties': manifest(),
    'index.js': 'module.exports = () => {}\n',
  })
  const zip = await packDirectory(src, { out: path.join(dir, 'm.zip') })
  const script = `
    const { bundleReader } = await import(${JSON.stringify(path.join(projectRoot, 'dist', 'loader', 'bundle-reader.js'))})
    const r = await bundleReader.read(${JSON.stringify(zip)}, { maxBytes: 1e6 })
    console.log(r.ok ? 'read ' + r.bundle.name : 'refused')
  `
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    out += d
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code, signal] = await new Promise((resolve) => child.once('exit', (c, s) => resolve([c, s])))
  clearTimeout(timer)
  assert.equal(signal, null, `the process had to be killed: the worker kept it alive\n${out}`)
  assert.equal(code, 0, out)
  assert.match(out, /read m/)
})

test('a second read of a module inflates only the entries stored differently; damage is still found', async (t) => {
  const { ZipReuse } = await import('../dist/bundle/zip-reuse.js')
  const dir = await tempDir(t)
  const base = {
    'module.properties': manifest(),
    'index.js': 'module.exports = { register () {} }\n',
    'node_modules/dep/index.js': `module.exports = ${JSON.stringify('x'.repeat(4000))}\n`,
    'node_modules/dep/same-size.js': 'exports.v = 1\n',
  }
  const v1 = await zipOf(base, path.join(dir, 'v1.zip'))
  // v2: the main file changed, and a dependency file changed to content of the same length
  const v2 = await zipOf(
    {
      ...base,
      'index.js': 'module.exports = { register () { return 2 } }\n',
      'node_modules/dep/same-size.js': 'exports.v = 2\n',
    },
    path.join(dir, 'v2.zip'),
  )
  const reuse = new ZipReuse()
  const read = async (file) => {
    const record = new Map()
    const data = await readFile(file)
    const bundle = await openBundle(file, { name: 'm', data, reuse: { previous: reuse.get('m'), record } })
    reuse.set('m', { data, hash: bundle.hash, entries: record })
    return bundle
  }
  const first = await read(v1)
  const second = await read(v2)
  assert.equal(second.files.get('index.js').toString(), 'module.exports = { register () { return 2 } }\n')
  assert.equal(second.files.get('node_modules/dep/same-size.js').toString(), 'exports.v = 2\n')
  // the unchanged entry is the same Buffer, not inflated again; the changed ones are new
  assert.equal(second.files.get('node_modules/dep/index.js'), first.files.get('node_modules/dep/index.js'))
  assert.notEqual(second.files.get('index.js'), first.files.get('index.js'))
  assert.deepEqual(
    plain(second),
    plain(await openBundle(v2, { name: 'm' })),
    'the same bundle as a read from scratch',
  )
  assert.ok(reuse.bytes > 4000)

  // a byte flipped in the stored data of the unchanged entry: it no longer matches, is inflated, and
  // its CRC-32 refuses the bundle as it would without the last read
  const bytes = await readFile(v2)
  const at = bytes.indexOf(Buffer.from('node_modules/dep/index.js')) + 'node_modules/dep/index.js'.length + 10
  bytes[at] ^= 0xff
  const damaged = path.join(dir, 'damaged.zip')
  await writeFile(damaged, bytes)
  const refused = await refusalHere(damaged, {
    name: 'm',
    reuse: { previous: reuse.get('m'), record: new Map() },
  })
  assert.equal(refused?.code, 'NYALA_ERR_BUNDLE_CORRUPT', String(refused))
  assert.equal(refused.details.entry, 'node_modules/dep/index.js')

  // the last read's own buffer (bytes found equal by the caller): every entry taken over unparsed
  const last = reuse.get('m')
  const whole = await openBundle(v2, {
    name: 'm',
    data: last.data,
    reuse: { previous: last, record: new Map() },
  })
  for (const [entry, content] of whole.files) assert.equal(content, second.files.get(entry), entry)
  assert.equal(whole.hash, second.hash)

  // the bound: a module whose content is over it is not kept; the least recently read goes first
  const small = new ZipReuse(6000)
  const entries = (n) =>
    new Map([['x', { compressed: new Uint8Array(1), method: '', crc: 0, content: Buffer.alloc(n) }]])
  small.set('a', { data: Buffer.alloc(1), hash: '', entries: entries(4000) })
  small.set('b', { data: Buffer.alloc(1), hash: '', entries: entries(4000) })
  assert.equal(small.get('a'), undefined)
  assert.ok(small.get('b'))
  small.set('c', { data: Buffer.alloc(1), hash: '', entries: entries(7000) })
  assert.equal(small.get('c'), undefined)
  assert.equal(small.bytes, 4001, "inflated bytes and the zip's")
})

test('the reader thread takes unchanged entries over from its last read of the module', async (t) => {
  const dir = await tempDir(t)
  const files = {
    'module.properties': manifest(),
    'index.js': 'module.exports = { register () {} }\n',
    'node_modules/dep/index.js': `module.exports = ${JSON.stringify('y'.repeat(3000))}\n`,
  }
  const v1 = await zipOf(files, path.join(dir, 'reuse-1.0.0.zip'))
  const v2 = await zipOf(
    { ...files, 'index.js': 'module.exports = { register () { return 2 } }\n' },
    path.join(dir, 'v2.zip'),
  )
  const reader = new BundleReader()
  t.after(() => reader.close())
  const first = await reader.read(v1, { maxBytes, name: 'reuse' })
  assert.equal(first.ok && first.reused, 0, 'nothing to take over on a first read')
  // the same file again: every entry; the zip's bytes still come back whole for the commit
  const again = await reader.read(v1, { maxBytes, name: 'reuse' })
  assert.equal(again.ok && again.reused, 3)
  assert.deepEqual(again.data, await readFile(v1))
  assert.deepEqual(plain(again.bundle), plain(first.bundle))
  const changed = await reader.read(v2, { maxBytes, name: 'reuse' })
  assert.equal(changed.ok && changed.reused, 2, 'all but the changed main file')
  assert.equal(
    changed.bundle.files.get('index.js').toString(),
    files['index.js'].replace('{}', '{ return 2 }'),
  )
  // another module's read takes nothing over from this one
  const other = await reader.read(v2, { maxBytes, name: 'other' })
  assert.equal(other.ok && other.reused, 0)
})

test('a bundle read ahead (prime) is the last read its first reload takes entries over from', async (t) => {
  const dir = await tempDir(t)
  const files = {
    'module.properties': manifest(),
    'index.js': 'module.exports = { register () {} }\n',
    'node_modules/dep/index.js': `module.exports = ${JSON.stringify('z'.repeat(3000))}\n`,
  }
  const file = await zipOf(files, path.join(dir, 'primed-1.0.0.zip'))
  const reader = new BundleReader()
  t.after(() => reader.close())
  const primed = await reader.prime(file, { maxBytes })
  assert.equal(primed.kept, true)
  assert.ok(primed.held > 3000, `held ${primed.held}`)
  // a second read ahead of the same module keeps what it has
  const twice = await reader.prime(file, { maxBytes })
  assert.equal(twice.kept, false)
  assert.equal(twice.reason, 'already read')
  const first = await reader.read(file, { maxBytes })
  assert.equal(first.ok && first.reused, 3, 'every entry taken over on the first read')
  // a file that is not a bundle is not kept, and says why
  await writeFile(path.join(dir, 'broken.zip'), 'not a zip')
  const broken = await reader.prime(path.join(dir, 'broken.zip'), { maxBytes })
  assert.equal(broken.kept, false)
  assert.match(broken.reason, /broken|zip|corrupt/i)
})

test('ZipReuse.setIfRoom keeps a read only beside what is kept, dropping nothing', async () => {
  const { ZipReuse } = await import('../dist/bundle/zip-reuse.js')
  const reuse = new ZipReuse(6000)
  const entries = (n) =>
    new Map([['x', { compressed: new Uint8Array(1), method: '', crc: 0, content: Buffer.alloc(n) }]])
  assert.equal(reuse.setIfRoom('a', { data: Buffer.alloc(1), hash: '', entries: entries(4000) }), true)
  assert.equal(reuse.setIfRoom('b', { data: Buffer.alloc(1), hash: '', entries: entries(4000) }), false)
  assert.ok(reuse.has('a'), 'the module kept first stays')
  assert.equal(reuse.has('b'), false)
  assert.equal(reuse.setIfRoom('a', { data: Buffer.alloc(1), hash: '', entries: entries(10) }), false)
  assert.equal(reuse.bytes, 4001)
})

test("leaveIsolated: an isolated module's files stay with the reader; without it they come back", async (t) => {
  const dir = await tempDir(t)
  const index = 'module.exports = { register () {} }\n'
  const own = await zipOf(
    { 'module.properties': manifest({ isolation: 'thread' }), 'index.js': index },
    path.join(dir, 'own.zip'),
  )
  const plainFile = await zipOf(
    { 'module.properties': manifest(), 'index.js': index },
    path.join(dir, 'plain.zip'),
  )
  const reader = new BundleReader()
  t.after(() => reader.close())
  // the manifest says isolation=thread: checked, hashed, without its files
  const left = await reader.read(own, { maxBytes, leaveIsolated: true })
  assert.equal(left.ok, true)
  assert.equal(left.bundle.contentsOmitted, true)
  assert.equal(left.bundle.files.size, 0)
  assert.equal(left.bundle.manifest.isolation, 'thread')
  assert.match(left.bundle.hash, /^[0-9a-f]{64}$/)
  assert.ok(left.data.length > 0, "the zip's bytes still come back for the commit")
  // the module's own thread reads it without the option: every file
  const whole = await reader.read(own, { maxBytes })
  assert.equal(whole.bundle.contentsOmitted, undefined)
  assert.equal(whole.bundle.files.get('index.js').toString(), index)
  assert.equal(whole.bundle.hash, left.bundle.hash)
  // the operator isolates a module whose manifest does not say so
  const byOperator = await reader.read(plainFile, { maxBytes, leaveIsolated: true, isolated: true })
  assert.equal(byOperator.bundle.contentsOmitted, true)
  const notIsolated = await reader.read(plainFile, { maxBytes, leaveIsolated: true })
  assert.equal(notIsolated.bundle.files.size, 2)
  // a syntax error is still found where the files stay
  const broken = await zipOf(
    { 'module.properties': manifest({ isolation: 'thread' }), 'index.js': 'module.exports = {' },
    path.join(dir, 'broken.zip'),
  )
  const refused = await reader.read(broken, { maxBytes, leaveIsolated: true })
  assert.equal(refused.bundle.files.size, 0)
  assert.throws(() => checkSyntax(refused.bundle), { code: 'NYALA_ERR_MODULE_SYNTAX' })
})
