// Signed bundles, in process (issue 18): a bundle signed by `packDirectory`, then changed one
// class of bytes at a time (an entry's content, its name, the signature, the signed list, the
// zip's directory), each refused with its own code by the same openBundle the host uses.
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'node:test'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { packDirectory } from '../dist/bundle/pack.js'
import { signatureFor } from '../dist/bundle/sign-bundle.js'
import { keyIdOf, publicKeyFileText, rawPublicKey } from '../dist/bundle/signing-key.js'
import { readTrustStore } from '../dist/bundle/trust-store.js'
import { writeZip } from '../dist/bundle/zip-writer.js'
import { manifest, rewriteZip, writeFiles } from './helpers.js'

const sigEntry = 'META-INF/NYALA.SIG'

/** A module's two files (version 1.0.0), to be written with writeZip and signed with signatureFor. */
const moduleFiles = () =>
  new Map([
    ['index.js', Buffer.from('module.exports = { register () {} }\n')],
    ['module.properties', Buffer.from(manifest({ version: '1.0.0' }))],
  ])

function newKey(name) {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const raw = rawPublicKey(publicKey)
  return { name, key: privateKey, keyId: keyIdOf(raw), pub: publicKeyFileText(raw, name) }
}

const alpha = newKey('alpha')
const beta = newKey('beta')
const gamma = newKey('gamma')

async function tempDir(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nyala-sig-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** A trust policy over .pub files written into a fresh directory (`extra` lines appended per key). */
async function trustOf(dir, keys, { required = true, threshold = 1, extra = {} } = {}) {
  const store = path.join(dir, 'trusted-keys')
  await writeFiles(
    store,
    Object.fromEntries(keys.map((k) => [`${k.name}.pub`, `${k.pub}${extra[k.name] ?? ''}`])),
  )
  return { required, threshold, dir: store, keys: readTrustStore(store) }
}

/** Packs a two-file module `shop` signed by `keys` into <dir>/shop.zip. */
async function signedBundle(dir, keys, sequence = 7) {
  const src = path.join(dir, 'shop')
  await writeFiles(src, {
    'module.properties': manifest({ version: '2.1.0' }),
    'index.js': 'module.exports = { register () {} }\n',
    'lib/util.js': 'module.exports = 1\n',
  })
  return packDirectory(src, { out: path.join(dir, 'shop.zip'), sign: { keys, sequence } })
}

const rewrite = rewriteZip

/** Edits the signature document (parsed JSON) of a zip. */
const editSignature = (file, out, fn) =>
  rewrite(file, out, (entries) => {
    const doc = JSON.parse(entries.get(sigEntry).toString('utf8'))
    fn(doc)
    entries.set(sigEntry, Buffer.from(JSON.stringify(doc)))
  })

async function refusal(file, trust) {
  try {
    await openBundle(file, { trust })
  } catch (err) {
    return err.code
  }
  return 'accepted'
}

test('a signed bundle verifies, names its key and sequence, and the loader never sees the signature entry', async (t) => {
  const dir = await tempDir(t)
  const file = await signedBundle(dir, [alpha])
  const bundle = await openBundle(file, { trust: await trustOf(dir, [alpha]) })
  assert.deepEqual(bundle.signature.keyIds, [alpha.keyId])
  assert.equal(bundle.signature.sequence, 7)
  assert.equal(bundle.files.has(sigEntry), false)
  assert.deepEqual([...bundle.files.keys()].sort(), ['index.js', 'lib/util.js', 'module.properties'])
})

test('each class of changed bytes is refused with its own code', async (t) => {
  const dir = await tempDir(t)
  const file = await signedBundle(dir, [alpha])
  const trust = await trustOf(dir, [alpha])
  // each changed copy in a folder of its own: the file name is the module name, and must stay "shop"
  const out = (n) => path.join(dir, n, 'shop.zip')

  // an entry's content
  const content = await rewrite(file, out('shop-content'), (e) =>
    e.set('lib/util.js', Buffer.from('module.exports = 2\n')),
  )
  assert.equal(await refusal(content, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_ENTRY_MISMATCH')
  // an entry's name: the signed one is missing, and the renamed one is not covered
  const renamed = await rewrite(file, out('shop-renamed'), (e) => {
    e.set('lib/utiL.js', e.get('lib/util.js'))
    e.delete('lib/util.js')
  })
  assert.equal(await refusal(renamed, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_ENTRY_MISMATCH')
  // an entry added after signing
  const added = await rewrite(file, out('shop-added'), (e) => e.set('lib/extra.js', Buffer.from('1')))
  assert.equal(await refusal(added, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_UNCOVERED')
  // the signature bytes
  const flipped = await editSignature(file, out('shop-sig'), (doc) => {
    const bytes = Buffer.from(doc.signatures[0].signature, 'base64')
    bytes[10] ^= 0x01
    doc.signatures[0].signature = bytes.toString('base64')
  })
  assert.equal(await refusal(flipped, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_INVALID')
  // the signed list, made to match changed content
  const relisted = await rewrite(file, out('shop-list'), (e) => {
    e.set('lib/util.js', Buffer.from('module.exports = 3\n'))
    const doc = JSON.parse(e.get(sigEntry).toString('utf8'))
    const entry = doc.entries.find(([p]) => p === 'lib/util.js')
    entry[2] = '0'.repeat(64)
    e.set(sigEntry, Buffer.from(JSON.stringify(doc)))
  })
  assert.equal(await refusal(relisted, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_INVALID')
  // the sequence (a replay dressed as a newer release)
  const resequenced = await editSignature(file, out('shop-seq'), (doc) => {
    doc.sequence = 99
  })
  assert.equal(await refusal(resequenced, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_INVALID')
  // the signature entry is not a document
  const garbage = await rewrite(file, out('shop-garbage'), (e) => e.set(sigEntry, Buffer.from('{not json')))
  assert.equal(await refusal(garbage, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_MALFORMED')
  // a bundle renamed to deploy as another module
  const other = path.join(dir, 'billing.zip')
  await writeFile(other, await readFile(file))
  assert.equal(await refusal(other, trust), 'NYALA_ERR_BUNDLE_SIGNATURE_MODULE')
  // the untouched bundle still passes: the refusals above came from the changes
  assert.equal(await refusal(file, trust), 'accepted')
})

test('two central directory entries with one name are refused in a signed zip', async (t) => {
  const dir = await tempDir(t)
  const file = await signedBundle(dir, [alpha])
  // "lib/util.js" and "lib/utiX.js" have one length: renaming the bytes of the second makes a duplicate
  const withTwin = await rewrite(file, path.join(dir, 'twin', 'shop.zip'), (e) =>
    e.set('lib/utiX.js', e.get('lib/util.js')),
  )
  const data = await readFile(withTwin)
  const twin = Buffer.from(data.toString('latin1').replaceAll('lib/utiX.js', 'lib/util.js'), 'latin1')
  const dup = path.join(dir, 'shop.dup.zip')
  await writeFile(dup, twin)
  const trust = await trustOf(dir, [alpha])
  // every zip with two entries of one path is refused while it is read, signed or not
  // (read-zip.ts, found by fuzzing), before the signature is looked at
  await assert.rejects(openBundle(dup, { name: 'shop', trust }), {
    code: 'NYALA_ERR_BUNDLE_DUPLICATE_ENTRY',
  })
})

test('keys: unknown, expired, revoked, rotation and threshold', async (t) => {
  const dir = await tempDir(t)
  const single = await signedBundle(dir, [alpha])
  const sub = async (n, keys, opts) => trustOf(await mkdtemp(path.join(dir, `${n}-`)), keys, opts)

  assert.equal(await refusal(single, await sub('unknown', [beta])), 'NYALA_ERR_BUNDLE_SIGNATURE_UNKNOWN_KEY')
  assert.equal(
    await refusal(single, await sub('expired', [alpha], { extra: { alpha: 'expires=2020-01-01\n' } })),
    'NYALA_ERR_BUNDLE_SIGNATURE_KEY_EXPIRED',
  )
  assert.equal(
    await refusal(single, await sub('future', [alpha], { extra: { alpha: 'expires=2999-01-01\n' } })),
    'accepted',
  )
  assert.equal(
    await refusal(single, await sub('revoked', [alpha], { extra: { alpha: 'revoked=true\n' } })),
    'NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED',
  )

  // a rotation: signed by the old and the new key; a host trusting either accepts it
  const rotDir = await mkdtemp(path.join(dir, 'rot-'))
  const rotated = await signedBundle(rotDir, [alpha, beta])
  assert.equal(await refusal(rotated, await sub('new-only', [beta])), 'accepted')
  assert.equal(await refusal(rotated, await sub('old-only', [alpha])), 'accepted')
  // the old key revoked after the rotation: the new key's signature is enough
  assert.equal(
    await refusal(rotated, await sub('old-revoked', [alpha, beta], { extra: { alpha: 'revoked=true\n' } })),
    'accepted',
  )

  // a threshold of 2 counts distinct trusted keys only
  const two = await sub('two', [alpha, beta, gamma], { threshold: 2 })
  assert.equal(await refusal(rotated, two), 'accepted')
  assert.equal(await refusal(single, two), 'NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD')
  const twice = await editSignature(single, path.join(dir, 'twice', 'shop.zip'), (doc) => {
    doc.signatures.push({ ...doc.signatures[0] })
  })
  await assert.rejects(openBundle(twice, { name: 'shop', trust: two }), {
    code: 'NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD',
  })
  const withUnknown = await sub('with-unknown', [alpha, gamma], { threshold: 2 })
  assert.equal(await refusal(rotated, withUnknown), 'NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD')
})

test('unsigned bundles: refused when required, accepted otherwise; the trust store refuses a bad key file', async (t) => {
  const dir = await tempDir(t)
  const src = path.join(dir, 'plain')
  await writeFiles(src, { 'module.properties': manifest(), 'index.js': 'module.exports = () => {}\n' })
  const plain = await packDirectory(src, { out: path.join(dir, 'plain.zip') })
  assert.equal(await refusal(plain, await trustOf(dir, [alpha])), 'NYALA_ERR_BUNDLE_SIGNATURE_MISSING')
  const open = await trustOf(await mkdtemp(path.join(dir, 'open-')), [alpha], { required: false })
  assert.equal(await refusal(plain, open), 'accepted')

  const bad = path.join(dir, 'bad-store')
  await writeFiles(bad, { 'x.pub': alpha.pub.replace(/key-id=\w+/, 'key-id=0000000000000000') })
  assert.throws(
    () => readTrustStore(bad),
    (err) => err.code === 'NYALA_ERR_TRUSTED_KEY_INVALID' && /key-id/.test(err.message),
  )
  await writeFiles(bad, { 'x.pub': `${alpha.pub}expires=someday\n` })
  assert.throws(() => readTrustStore(bad), { code: 'NYALA_ERR_TRUSTED_KEY_INVALID' })
})

test('a key trusted by two .pub files is revoked or expired when either file says so', async (t) => {
  const dir = await tempDir(t)
  const single = await signedBundle(dir, [alpha])
  // two copies of one key (a renamed copy left behind); the one read first says nothing
  const store = async (n, extra) => {
    const d = path.join(await mkdtemp(path.join(dir, `${n}-`)), 'trusted-keys')
    await writeFiles(d, { '0-alpha-copy.pub': alpha.pub, 'alpha.pub': `${alpha.pub}${extra}` })
    return { required: true, threshold: 1, dir: d, keys: readTrustStore(d) }
  }
  assert.equal(
    await refusal(single, await store('revoked', 'revoked=true\n')),
    'NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED',
  )
  assert.equal(
    await refusal(single, await store('expired', 'expires=2020-01-01\n')),
    'NYALA_ERR_BUNDLE_SIGNATURE_KEY_EXPIRED',
  )
  assert.equal(await refusal(single, await store('plain', '')), 'accepted')
})

test('a signed zip with zip64 end records (65,535 entries or more, as nyala pack writes them) verifies', async (t) => {
  const dir = await tempDir(t)
  const files = moduleFiles()
  for (let i = 0; files.size < 70_000; i++) files.set(`f/${i}.txt`, Buffer.from(`${i}\n`))
  const many = path.join(dir, 'many.zip')
  const signed = new Map([
    ...files,
    [sigEntry, signatureFor(files, 'many', '1.0.0', { keys: [alpha], sequence: 3 })],
  ])
  await writeFile(many, writeZip(many, signed, 1))
  const bundle = await openBundle(many, { trust: await trustOf(dir, [alpha]) })
  assert.equal(bundle.signature.sequence, 3)
  assert.equal(bundle.files.size, 70_000)
  // and a name given twice is still seen past the zip64 records: f/10.txt renamed f/11.txt in place
  const data = await readFile(many)
  for (let at = data.indexOf('f/10.txt'); at >= 0; at = data.indexOf('f/10.txt', at + 1))
    data.write('f/11.txt', at)
  const twice = path.join(dir, 'twice', 'many.zip')
  await mkdir(path.dirname(twice))
  await writeFile(twice, data)
  // the zip reader refuses a repeated path in every bundle, before the signature is looked at
  await assert.rejects(openBundle(twice, { trust: await trustOf(dir, [alpha]) }), {
    code: 'NYALA_ERR_BUNDLE_DUPLICATE_ENTRY',
  })
})

test('a second entry of one name is seen however its name is encoded (no UTF-8 flag, as jszip reads it)', async (t) => {
  const dir = await tempDir(t)
  const files = moduleFiles().set('é1.js', Buffer.from('module.exports = 1\n'))
  const sig = signatureFor(files, 'shop', '1.0.0', { keys: [alpha], sequence: 1 })
  // an unsigned é0.js before the signed é1.js, then renamed é1.js without the UTF-8 flag (bit 11):
  // jszip reads both names as UTF-8 and keeps the last; the listing read the unflagged one as latin1
  const zipped = writeZip(
    'shop.zip',
    new Map([['é0.js', Buffer.from('evil()\n')], ...files, [sigEntry, sig]]),
    6,
  )
  const name = Buffer.from('é0.js')
  for (let at = zipped.indexOf(name); at >= 0; at = zipped.indexOf(name, at + 1)) {
    const flags = zipped.readUInt32LE(at - 30) === 0x04034b50 ? at - 30 + 6 : at - 46 + 8
    zipped.writeUInt16LE(zipped.readUInt16LE(flags) & ~0x800, flags)
    zipped.write('é1.js', at)
  }
  const file = path.join(dir, 'shop.zip')
  await writeFile(file, zipped)
  await assert.rejects(openBundle(file, { trust: await trustOf(dir, [alpha]) }), {
    code: 'NYALA_ERR_BUNDLE_DUPLICATE_ENTRY',
  })
})

test('the trust store as a reload sees it: kept while nothing changed, read again when a key file is added, edited or removed', async (t) => {
  const { trustPolicyNow } = await import('../dist/bundle/trust-store-cache.js')
  const dir = await tempDir(t)
  const store = path.join(dir, 'trusted-keys')
  const settings = { required: true, threshold: 1, trustedKeysDir: store }
  // stamps older than the 2 s in which a change is not told apart by its stamps
  const age = async (...files) => {
    const past = new Date(Date.now() - 60_000)
    for (const f of files) await utimes(f, past, past)
  }
  const ids = (policy) => policy.keys.map((k) => `${k.keyId}${k.revoked ? ' revoked' : ''}`)

  assert.deepEqual((await trustPolicyNow(settings)).keys, [], 'a missing directory is an empty store')
  await mkdir(store)
  await writeFile(path.join(store, 'alpha.pub'), alpha.pub)
  await age(path.join(store, 'alpha.pub'), store)
  const first = await trustPolicyNow(settings)
  assert.deepEqual(ids(first), [alpha.keyId])
  // nothing changed: the same keys, not read again
  assert.equal((await trustPolicyNow(settings)).keys, first.keys)

  // a key added: the directory changed
  await writeFile(path.join(store, 'beta.pub'), beta.pub)
  await age(path.join(store, 'beta.pub'), store)
  assert.deepEqual(ids(await trustPolicyNow(settings)), [alpha.keyId, beta.keyId])

  // revoked by editing its file in place (the directory does not change)
  await writeFile(path.join(store, 'alpha.pub'), `${alpha.pub}revoked=true\n`)
  await age(path.join(store, 'alpha.pub'))
  assert.deepEqual(ids(await trustPolicyNow(settings)), [`${alpha.keyId} revoked`, beta.keyId])

  // removed
  await rm(path.join(store, 'beta.pub'))
  await age(store)
  assert.deepEqual(ids(await trustPolicyNow(settings)), [`${alpha.keyId} revoked`])

  // a key file that cannot be used is refused on every read, never kept
  await writeFile(path.join(store, 'bad.pub'), 'algorithm=rsa\n')
  await age(path.join(store, 'bad.pub'), store)
  await assert.rejects(trustPolicyNow(settings), { code: 'NYALA_ERR_TRUSTED_KEY_INVALID' })
  await assert.rejects(trustPolicyNow(settings), { code: 'NYALA_ERR_TRUSTED_KEY_INVALID' })
  await rm(path.join(store, 'bad.pub'))
  assert.deepEqual(ids(await trustPolicyNow(settings)), [`${alpha.keyId} revoked`])

  // a change within 2 s of the read is read again next time, whatever the stamps say
  await writeFile(path.join(store, 'alpha.pub'), alpha.pub)
  const fresh = await trustPolicyNow(settings)
  assert.deepEqual(ids(fresh), [alpha.keyId])
  assert.notEqual((await trustPolicyNow(settings)).keys, fresh.keys)
})
