// Signed bundles end to end (issue 18): keys made by `nyala keygen`, bundles by `nyala pack
// --sign`, a host with bundle.signature.required=true. Each refusal at start-up and as a reload
// (.tmp and staging) leaves the old generation answering and the refused file where it was;
// a rotation, a revoked key, a rollback and a threshold of 2.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { appendFile, copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import {
  makeRoot,
  moduleSource,
  modulesOf,
  request,
  rewriteZip,
  runCli,
  startHost,
  waitUntil,
} from './helpers.js'

const settings = (extra = '') =>
  [
    'port=0',
    'host=127.0.0.1',
    'auto.reload.modules=true',
    'auto.reload.monitoring.type=tmpfile, stagingDirectory',
    'auto.reload.settle.ms=50',
    'bundle.signature.required=true',
    extra,
    '',
  ].join('\n')

async function cli(args) {
  const res = await runCli(args)
  assert.equal(res.code, 0, `nyala ${args.join(' ')}\n${res.stdout}\n${res.stderr}`)
  return res.stdout
}

/** `nyala keygen` into <root>/keys; returns the key and pub file paths. */
async function keygen(root, name) {
  await cli(['keygen', '--out', path.join(root, 'keys'), '--name', name])
  return { key: path.join(root, 'keys', `${name}.key`), pub: path.join(root, 'keys', `${name}.pub`) }
}

async function trust(root, ...keys) {
  await mkdir(path.join(root, 'config', 'trusted-keys'), { recursive: true })
  for (const k of keys) await copyFile(k.pub, path.join(root, 'config', 'trusted-keys', path.basename(k.pub)))
}

/** A `shop` bundle answering its tag, packed (and signed by `keys` with `sequence`) into <root>/out/<tag>/shop.zip. */
async function shop(root, tag, keys = [], sequence = undefined) {
  const dir = await moduleSource(root, `shop-${tag}`, {
    files: {
      'index.js': `module.exports = { async register (app, ctx) { app.get('/', async () => ({ tag: ${JSON.stringify(tag)}, generation: ctx.generation })) } }\n`,
    },
  })
  const out = path.join(root, 'out', tag, 'shop.zip')
  await mkdir(path.dirname(out), { recursive: true })
  const sign = keys.flatMap((k) => ['--sign', k.key])
  const seq = sequence === undefined ? [] : ['--sequence', String(sequence)]
  await cli(['pack', dir, '-o', out, ...sign, ...seq])
  return out
}

/** Places a file the way deploy tools do: a temporary name in the same directory, then a rename. */
async function place(file, dest) {
  await mkdir(path.dirname(dest), { recursive: true })
  await copyFile(file, `${dest}.part`)
  await rename(`${dest}.part`, dest)
}

const tagOf = async (host) => (await request(host.url('/shop/'))).body.tag
const refusalsOf = (host, code) => host.logs().filter((r) => r.code === code && r.module === 'shop')

async function refused(host, code, count = 1) {
  await waitUntil(() => refusalsOf(host, code).length >= count, `${code} in the log`, 30_000)
}

test('with signatures required: signed serves, each refusal leaves the old generation answering', async (t) => {
  const root = await makeRoot(t, settings())
  const alpha = await keygen(root, 'alpha')
  const beta = await keygen(root, 'beta')
  const stranger = await keygen(root, 'stranger')
  await trust(root, alpha, beta)
  await copyFile(await shop(root, 'one', [alpha], 10), path.join(modulesOf(root), 'shop.zip'))
  // an unsigned module beside it is refused at start-up; the signed one serves
  const plainDir = await moduleSource(root, 'plain')
  await cli(['pack', plainDir, '-o', path.join(modulesOf(root), 'plain.zip')])

  const host = await startHost(t, root)
  assert.equal(await tagOf(host), 'one')
  const start = host.logs().find((r) => r.signaturesRequired === true)
  assert.equal(start?.trustedKeys, 2, 'start-up says signatures are required and how many keys are trusted')
  const plain = (await request(host.admin('/modules/plain'))).body
  assert.equal(plain.state, 'failed')
  assert.equal(plain.error.code, 'NYALA_ERR_BUNDLE_SIGNATURE_MISSING')
  const info = (await request(host.admin('/modules/shop'))).body
  assert.deepEqual(info.signature.keyIds.length, 1)
  assert.equal(info.signature.sequence, 10)
  const status = await runCli(['status', '--admin', host.admin('')])
  assert.match(status.stdout, new RegExp(`${info.signature.keyIds[0]} #10`))

  const tmp = path.join(modulesOf(root), 'shop.zip.tmp')
  const staged = path.join(root, 'staging', 'shop.zip')

  // unsigned, as a .tmp
  await place(await shop(root, 'unsigned'), tmp)
  await refused(host, 'NYALA_ERR_BUNDLE_SIGNATURE_MISSING')
  assert.equal(await tagOf(host), 'one')
  assert.ok(existsSync(tmp), 'the refused .tmp stays where it was')

  // signed by a key nobody trusts, staged
  await place(await shop(root, 'stranger', [stranger], 20), staged)
  await refused(host, 'NYALA_ERR_BUNDLE_SIGNATURE_UNKNOWN_KEY')
  assert.equal(await tagOf(host), 'one')
  assert.ok(existsSync(staged), 'the refused staged file stays where it was')

  // a trusted key, but an older sequence than the one running
  await place(await shop(root, 'old', [alpha], 9), staged)
  await refused(host, 'NYALA_ERR_BUNDLE_SIGNATURE_ROLLBACK')
  assert.equal(await tagOf(host), 'one')

  // a rotation: signed by the old and the new key, a newer sequence: it serves
  await place(await shop(root, 'rotated', [alpha, beta], 11), staged)
  await waitUntil(async () => (await tagOf(host)) === 'rotated', 'the rotated bundle to serve', 30_000)
  const rotated = (await request(host.admin('/modules/shop'))).body.signature
  assert.equal(rotated.keyIds.length, 2)
  assert.equal(rotated.sequence, 11)

  // the old key revoked (its .pub file edited): a bundle signed by it alone is refused from now on
  await appendFile(path.join(root, 'config', 'trusted-keys', 'alpha.pub'), 'revoked=true\n')
  await place(await shop(root, 'revoked', [alpha], 12), tmp)
  await refused(host, 'NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED')
  assert.equal(await tagOf(host), 'rotated')
  // while the new key still deploys
  await place(await shop(root, 'beta', [beta], 13), tmp)
  await waitUntil(
    async () => (await tagOf(host)) === 'beta',
    'the bundle signed by the new key to serve',
    30_000,
  )
})

test('a threshold of 2 needs two distinct trusted keys, at start-up and on reload', async (t) => {
  const root = await makeRoot(t, settings('bundle.signature.threshold=2'))
  const alpha = await keygen(root, 'alpha')
  const beta = await keygen(root, 'beta')
  await trust(root, alpha, beta)
  await copyFile(await shop(root, 'one', [alpha], 1), path.join(modulesOf(root), 'shop.zip'))
  const ok = await moduleSource(root, 'other')
  await cli([
    'pack',
    ok,
    '-o',
    path.join(modulesOf(root), 'other.zip'),
    '--sign',
    alpha.key,
    '--sign',
    beta.key,
  ])

  const host = await startHost(t, root)
  const shopInfo = (await request(host.admin('/modules/shop'))).body
  assert.equal(shopInfo.error.code, 'NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD')
  assert.equal((await request(host.url('/other/'))).status, 200)

  // nyala verify agrees with the host, exit codes included
  const bad = await runCli(['verify', path.join(modulesOf(root), 'shop.zip'), '--root', root])
  assert.equal(bad.code, 1)
  assert.match(bad.stdout, /NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD/)
  const good = await runCli(['verify', path.join(modulesOf(root), 'other.zip'), '--root', root])
  assert.equal(good.code, 0, good.stdout + good.stderr)

  // a reload signed by both serves the module that failed at start-up
  await place(await shop(root, 'two', [alpha, beta], 2), path.join(root, 'staging', 'shop.zip'))
  await waitUntil(
    async () => (await request(host.url('/shop/'))).body?.tag === 'two',
    'shop to serve',
    30_000,
  )
})

// ------------------------------------------------------------------------------------------
// Every refusal, at start-up (one module per case) and as a reload of a running module
// (alternating .tmp and staging), by bundles changed the way an attacker or a broken pipeline
// would change them.

const sig = 'META-INF/NYALA.SIG'

/** The bad variants of a module `name`, each built into <root>/bad/<case>/<name>.zip; `keys` by role. */
function badCases(root, keys) {
  const make = async (name, tag, signers, sequence) => {
    const dir = await moduleSource(root, `${name}-${tag}-src`, {
      files: {
        'index.js': `module.exports = { async register (app) { app.get('/', async () => ({ tag: ${JSON.stringify(tag)} })) } }\n`,
        'lib/util.js': 'module.exports = 1\n',
      },
    })
    const out = path.join(root, 'bad', tag, `${name}.zip`)
    await mkdir(path.dirname(out), { recursive: true })
    const sign = signers.flatMap((k) => ['--sign', k.key])
    const seq = sign.length > 0 ? ['--sequence', String(sequence)] : []
    await cli(['pack', dir, '-o', out, ...sign, ...seq])
    return out
  }
  const edited = async (name, tag, edit) => {
    const good = await make(name, `${tag}-good`, [keys.alpha], 20)
    return rewriteZip(good, path.join(root, 'bad', tag, `${name}.zip`), edit)
  }
  return {
    NYALA_ERR_BUNDLE_SIGNATURE_MISSING: (name) => make(name, 'missing', [], 20),
    NYALA_ERR_BUNDLE_SIGNATURE_MALFORMED: (name) =>
      edited(name, 'malformed', (e) => e.set(sig, Buffer.from('[]'))),
    NYALA_ERR_BUNDLE_SIGNATURE_MODULE: async (name) => {
      const other = await make(`${name}x`, 'renamed', [keys.alpha], 20)
      const out = path.join(root, 'bad', 'renamed', `${name}.zip`)
      await copyFile(other, out)
      return out
    },
    NYALA_ERR_BUNDLE_SIGNATURE_UNKNOWN_KEY: (name) => make(name, 'unknown', [keys.stranger], 20),
    NYALA_ERR_BUNDLE_SIGNATURE_KEY_EXPIRED: (name) => make(name, 'expired', [keys.old], 20),
    NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED: (name) => make(name, 'revoked', [keys.gone], 20),
    NYALA_ERR_BUNDLE_SIGNATURE_INVALID: (name) =>
      edited(name, 'invalid', (e) => {
        const doc = JSON.parse(e.get(sig).toString('utf8'))
        doc.signedAt = new Date(0).toISOString()
        e.set(sig, Buffer.from(JSON.stringify(doc)))
      }),
    NYALA_ERR_BUNDLE_SIGNATURE_UNCOVERED: (name) =>
      edited(name, 'uncovered', (e) => e.set('lib/extra.js', Buffer.from('module.exports = 2\n'))),
    NYALA_ERR_BUNDLE_SIGNATURE_ENTRY_MISMATCH: (name) =>
      edited(name, 'mismatch', (e) => e.set('lib/util.js', Buffer.from('module.exports = 9\n'))),
    // every zip with two entries of one path is refused while it is read (read-zip.ts), signed or not
    NYALA_ERR_BUNDLE_DUPLICATE_ENTRY: async (name) => {
      // "lib/utiX.js" renamed in the zip's bytes to "lib/util.js": two entries of one name
      const twin = await edited(name, 'duplicate', (e) => e.set('lib/utiX.js', e.get('lib/util.js')))
      const bytes = Buffer.from(
        (await readFile(twin)).toString('latin1').replaceAll('lib/utiX.js', 'lib/util.js'),
        'latin1',
      )
      await writeFile(twin, bytes)
      return twin
    },
  }
}

test('every refusal, at start-up and as a reload over .tmp and staging, leaves the old generation answering', async (t) => {
  const root = await makeRoot(t, settings())
  const keys = {
    alpha: await keygen(root, 'alpha'),
    stranger: await keygen(root, 'stranger'),
    old: await keygen(root, 'old'),
    gone: await keygen(root, 'gone'),
  }
  await trust(root, keys.alpha, keys.old, keys.gone)
  const store = path.join(root, 'config', 'trusted-keys')
  await appendFile(path.join(store, 'old.pub'), 'expires=2020-01-01\n')
  await appendFile(path.join(store, 'gone.pub'), 'revoked=true\n')
  const cases = badCases(root, keys)

  // start-up: one module per case, beside a good one
  const names = new Map()
  for (const [i, [code, build]] of Object.entries(cases).entries()) {
    const name = `m${i}`
    names.set(name, code)
    await copyFile(await build(name), path.join(modulesOf(root), `${name}.zip`))
  }
  await copyFile(await shop(root, 'one', [keys.alpha], 10), path.join(modulesOf(root), 'shop.zip'))
  const host = await startHost(t, root)
  for (const [name, code] of names) {
    const info = (await request(host.admin(`/modules/${name}`))).body
    assert.equal(info.state, 'failed', name)
    assert.equal(info.error?.code, code, `${name} at start-up`)
  }
  assert.equal(await tagOf(host), 'one')

  // reloads of shop: each case, alternating paths; plus a rollback
  const all = [
    ...Object.entries(cases),
    ['NYALA_ERR_BUNDLE_SIGNATURE_ROLLBACK', () => shop(root, 'older', [keys.alpha], 3)],
  ]
  for (const [i, [code, build]] of all.entries()) {
    const dest =
      i % 2 === 0 ? path.join(modulesOf(root), 'shop.zip.tmp') : path.join(root, 'staging', 'shop.zip')
    await place(await build('shop'), dest)
    await refused(host, code)
    assert.equal(await tagOf(host), 'one', `${code}: the old generation still answers`)
    assert.ok(existsSync(dest), `${code}: the refused file stays where it was`)
    await rm(dest) // as an operator would, before the next attempt
  }
  // and a good one still deploys afterwards
  await place(await shop(root, 'two', [keys.alpha], 30), path.join(root, 'staging', 'shop.zip'))
  await waitUntil(async () => (await tagOf(host)) === 'two', 'the good bundle to serve', 30_000)
})
