// Hot reload end to end: each monitoring type, copies made by cp, cp -p and a
// slow chunked write, the touch file, dependency chains, broken bundles that
// must change nothing, added and removed bundles, and ctx.previous.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import {
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  packWithZip,
  request,
  startHost,
} from './helpers.js'

const run = promisify(execFile)

/** Polls `fn` until it returns a truthy value (bounded); returns that value. */
async function until(fn, what, ms = 15_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

const body = async (host, p) => (await request(host.url(p))).body
const modules = async (host) => {
  const res = await request(host.admin('/modules'))
  return Object.fromEntries(res.body.modules.map((m) => [m.name, m]))
}

/** A bundle of `name` answering `{ module, generation, version, tag }`, packed to `out` (not deployed). */
async function variant(root, name, tag, { fields = {}, files = {}, pack = packWithNyala } = {}) {
  const dir = await moduleSource(root, `${name}-${tag}`, {
    fields,
    files: {
      'index.js': `module.exports = { async register (app, ctx) { app.get('/', async () => ({ module: ctx.name, generation: ctx.generation, version: ctx.version, tag: ${JSON.stringify(tag)} })) } }\n`,
      ...files,
    },
  })
  return pack(dir, path.join(root, 'src', `${name}-${tag}.zip`))
}

/** Writes `data` to `file` in five chunks with pauses, as a slow copy over the network would. */
async function writeSlowly(file, data, onChunk = async () => {}) {
  const fh = await open(file, 'w')
  const step = Math.ceil(data.length / 5)
  try {
    for (let i = 0; i < data.length; i += step) {
      await fh.write(data.subarray(i, i + step))
      await fh.sync()
      await sleep(120)
      if (i + step < data.length) await onChunk()
    }
  } finally {
    await fh.close()
  }
}

const reloadProps = (extra = '') =>
  `port=0\nhost=127.0.0.1\nauto.reload.modules=true\nreload.debug=true\n${extra}`

test('default type: a bundle replaced by cp, by cp -p and by a slow chunked write reloads', async (t) => {
  const root = await makeRoot(t, reloadProps())
  await deploy(root, 'solo')
  const host = await startHost(t, root)
  assert.equal((await body(host, '/solo')).generation, 1)
  const target = path.join(modulesOf(root), 'solo.zip')

  const a = await variant(root, 'solo', 'a')
  await run('cp', [a, target])
  await until(async () => (await body(host, '/solo')).tag === 'a', 'cp copy')

  // cp -p keeps the old mtime: only the content tells
  const b = await variant(root, 'solo', 'b')
  await run('cp', ['-p', b, target])
  await until(async () => (await body(host, '/solo')).tag === 'b', 'cp -p copy')

  // a slow writer: the half-written zip is retried, never reported broken, never half-loaded
  const c = await readFile(await variant(root, 'solo', 'c'))
  await writeSlowly(target, c, async () => {
    // the old code serves while the file is incomplete
    assert.equal((await request(host.url('/solo'))).status, 200)
  })
  const final = await until(async () => {
    const b2 = await body(host, '/solo')
    return b2.tag === 'c' && b2
  }, 'chunked write')
  assert.ok(final.generation >= 4)
  const failed = host.logs().filter((r) => r.level >= 50)
  assert.deepEqual(failed, [], 'no error was reported for the incomplete file')
  assert.equal((await modules(host)).solo.lastError, null)
})

test('a chain reloads together: core rebuilds customers and billing, hello keeps its generation', async (t) => {
  const root = await makeRoot(t, reloadProps())
  const coreIndex = (tag) =>
    `module.exports = { async register (app, ctx) { ctx.provide({ tag: ${JSON.stringify(tag)} }); app.get('/', async () => ({ generation: ctx.generation })) } }\n`
  const userIndex = (dep) =>
    `module.exports = { async register (app, ctx) { const d = ctx.use('${dep}'); app.get('/', async () => ({ generation: ctx.generation, tag: d.tag })) ; ctx.provide(d) } }\n`
  await deploy(root, 'core', { files: { 'index.js': coreIndex('v1') } })
  await deploy(root, 'customers', {
    fields: { 'depends-on': 'core' },
    files: { 'index.js': userIndex('core') },
  })
  await deploy(root, 'billing', {
    fields: { 'depends-on': 'customers' },
    files: { 'index.js': userIndex('customers') },
  })
  await deploy(root, 'hello')
  const host = await startHost(t, root)
  assert.equal((await body(host, '/billing')).tag, 'v1')

  const dir = await moduleSource(root, 'core2', { files: { 'index.js': coreIndex('v2') } })
  await packWithNyala(dir, path.join(root, 'src', 'core.zip'))
  await copyFile(path.join(root, 'src', 'core.zip'), path.join(modulesOf(root), 'core.zip'))
  await until(async () => (await body(host, '/billing')).tag === 'v2', 'billing rebuilt against the new core')
  const m = await modules(host)
  assert.equal(m.core.generation, 2)
  assert.equal(m.customers.generation, 2)
  assert.equal(m.billing.generation, 2)
  assert.equal(m.hello.generation, 1, 'an unrelated module is not touched')
  const rec = host.logs().find((r) => r.reload && Array.isArray(r.affected))
  assert.deepEqual(rec.affected, ['core', 'customers', 'billing'])
})

test('tmpfile type: <bundle>.tmp and <name>.tmp replace the bundle by rename; the old one is kept as .previous', async (t) => {
  const root = await makeRoot(t, reloadProps('auto.reload.monitoring.type=tmpfile\n'))
  await deploy(root, 'billing', {}, 'billing.jar')
  const host = await startHost(t, root)
  const jar = path.join(modulesOf(root), 'billing.jar')
  const original = await readFile(jar)

  // a direct change of the bundle is not this type's trigger
  const ignored = await variant(root, 'billing', 'ignored')
  await copyFile(ignored, path.join(root, 'src', 'copy.zip'))

  const a = await variant(root, 'billing', 'a')
  await copyFile(a, `${jar}.tmp`)
  await until(async () => (await body(host, '/billing')).tag === 'a', 'billing.jar.tmp')
  await until(async () => !existsSync(`${jar}.tmp`), '.tmp gone')
  assert.deepEqual(await readFile(jar), await readFile(a), 'the bundle now holds the new content')
  assert.deepEqual(await readFile(`${jar}.previous`), original, 'the old bundle is kept as .previous')

  const b = await variant(root, 'billing', 'b')
  await copyFile(b, path.join(modulesOf(root), 'billing.tmp'))
  await until(async () => (await body(host, '/billing')).tag === 'b', 'billing.tmp')
  await until(async () => !existsSync(path.join(modulesOf(root), 'billing.tmp')), 'billing.tmp gone')
  assert.deepEqual(await readFile(jar), await readFile(b))
  assert.deepEqual(await readFile(`${jar}.previous`), await readFile(a), '.previous is the last good one')

  // cp -p (old mtime) and a slow chunked write of the .tmp
  const c = await variant(root, 'billing', 'c')
  await run('cp', ['-p', c, `${jar}.tmp`])
  await until(async () => (await body(host, '/billing')).tag === 'c', 'cp -p of the .tmp')
  await until(async () => !existsSync(`${jar}.tmp`), '.tmp gone after cp -p')
  await writeSlowly(`${jar}.tmp`, await readFile(await variant(root, 'billing', 'd')))
  await until(async () => (await body(host, '/billing')).tag === 'd', 'chunked .tmp')
  assert.deepEqual(await readFile(`${jar}.previous`), await readFile(c))
  assert.equal((await modules(host)).billing.lastError, null, 'the incomplete .tmp was never reported')

  // a .tmp for a module that does not exist yet loads a new module
  const fresh = await variant(root, 'fresh', 'new')
  await copyFile(fresh, path.join(modulesOf(root), 'fresh.zip.tmp'))
  await until(async () => (await request(host.url('/fresh'))).status === 200, 'new module from .tmp')
  assert.ok(existsSync(path.join(modulesOf(root), 'fresh.zip')))
})

test('stagingDirectory type: a staged bundle moves into modules/ after it serves', async (t) => {
  const root = await makeRoot(t, reloadProps('auto.reload.monitoring.type=stagingDirectory\n'))
  await deploy(root, 'shop')
  const host = await startHost(t, root)
  const staging = path.join(root, 'staging')
  const a = await variant(root, 'shop', 'a')
  await run('cp', ['-p', a, path.join(staging, 'shop.zip')])
  await until(async () => (await body(host, '/shop')).tag === 'a', 'staged bundle')
  await until(async () => (await readdir(staging)).length === 0, 'staging emptied')
  assert.deepEqual(await readFile(path.join(modulesOf(root), 'shop.zip')), await readFile(a))
  assert.ok(existsSync(path.join(modulesOf(root), 'shop.zip.previous')))

  await run('cp', [await variant(root, 'shop', 'b'), path.join(staging, 'shop.zip')])
  await until(async () => (await body(host, '/shop')).tag === 'b', 'cp into staging')
  await writeSlowly(path.join(staging, 'shop.zip'), await readFile(await variant(root, 'shop', 'c')))
  await until(async () => (await body(host, '/shop')).tag === 'c', 'chunked write into staging')
  await until(async () => (await readdir(staging)).length === 0, 'staging emptied again')
  assert.equal((await modules(host)).shop.lastError, null)
  assert.equal((await modules(host)).shop.generation, 4)
})

test('touch file: changes wait for the touch; its first line limits the reload to the modules it names', async (t) => {
  const root = await makeRoot(t, reloadProps('use.touch.file=true\n'))
  await deploy(root, 'one')
  await deploy(root, 'two')
  const touch = path.join(modulesOf(root), 'touch.txt')
  await writeFile(touch, '')
  const host = await startHost(t, root)
  await copyFile(await variant(root, 'one', 'a'), path.join(modulesOf(root), 'one.zip'))
  await copyFile(await variant(root, 'two', 'a'), path.join(modulesOf(root), 'two.zip'))
  await sleep(600)
  assert.equal((await body(host, '/one')).generation, 1, 'nothing reloads before the touch')

  await writeFile(touch, 'two\n')
  await until(async () => (await body(host, '/two')).tag === 'a', 'named module reloaded')
  assert.equal((await body(host, '/one')).generation, 1, 'a module the touch file does not name waits')

  await writeFile(touch, '\n')
  await until(async () => (await body(host, '/one')).tag === 'a', 'everything reloaded')
  // a touch with no content change reloads nothing
  const before = await modules(host)
  await writeFile(touch, ' \n')
  await until(
    () => host.logs().some((r) => /content unchanged/.test(r.msg ?? '')),
    'a debug record saying nothing changed',
  )
  const after = await modules(host)
  assert.equal(after.one.generation, before.one.generation)
  assert.equal(after.two.generation, before.two.generation)
})

test('touch file absent at start-up: created by a rename, then replaced by one, it triggers each time', async (t) => {
  const root = await makeRoot(t, reloadProps('auto.reload.monitoring.type=tmpfile\nuse.touch.file=true\n'))
  await deploy(root, 'one')
  const dir = modulesOf(root)
  const touch = path.join(dir, 'touch.txt')
  const host = await startHost(t, root)
  // as an editor saves: write a hidden file, rename it over the touch file
  const touchByRename = async (text) => {
    await writeFile(path.join(dir, '.touch.swp'), text)
    await rename(path.join(dir, '.touch.swp'), touch)
  }
  await copyFile(await variant(root, 'one', 'a'), path.join(dir, 'one.zip.tmp'))
  await sleep(300)
  assert.equal((await body(host, '/one')).generation, 1, 'the .tmp waits for the touch')
  await touchByRename('one\n')
  await until(async () => (await body(host, '/one')).tag === 'a', 'touch file created by a rename')
  await copyFile(await variant(root, 'one', 'b'), path.join(dir, 'one.zip.tmp'))
  await touchByRename('one\n')
  await until(async () => (await body(host, '/one')).tag === 'b', 'touch file replaced by a rename')
})

test('a broken bundle changes nothing: the old generation serves, files stay, lastError names the code', async (t) => {
  const root = await makeRoot(
    t,
    reloadProps('auto.reload.settle.timeout=1\nauto.reload.monitoring.type=tmpfile\n'),
  )
  await deploy(root, 'base')
  await deploy(root, 'app', { fields: { 'depends-on': 'base' } })
  const host = await startHost(t, root)
  const tmp = path.join(modulesOf(root), 'app.zip.tmp')
  const good = await readFile(path.join(modulesOf(root), 'app.zip'))
  const good2 = await variant(root, 'app', 'ok', { fields: { 'depends-on': 'base' } })

  const cases = [
    ['truncated', async () => (await readFile(good2)).subarray(0, 100), 'NYALA_ERR_BUNDLE_UNSETTLED'],
    [
      'syntax',
      async () =>
        readFile(
          await variant(root, 'app', 'syntax', {
            files: { 'index.js': 'module.exports = {\n  register (app) {\n    app.get("/", (\n  }\n}\n' },
            pack: packWithZip,
          }),
        ),
      'NYALA_ERR_MODULE_SYNTAX',
    ],
    [
      'throws',
      async () =>
        readFile(
          await variant(root, 'app', 'throws', {
            files: { 'index.js': 'module.exports = { register () { throw new Error("boom") } }\n' },
          }),
        ),
      'NYALA_ERR_MODULE_REGISTER_FAILED',
    ],
    [
      'missing',
      async () => readFile(await variant(root, 'app', 'missing', { fields: { 'depends-on': 'nowhere' } })),
      'NYALA_ERR_DEPENDENCY_MISSING',
    ],
    [
      'prefix taken',
      async () =>
        readFile(await variant(root, 'app', 'prefix', { fields: { 'depends-on': 'base', prefix: '/base' } })),
      'NYALA_ERR_PREFIX_CONFLICT',
    ],
  ]
  for (const [label, make, code] of cases) {
    await writeFile(tmp, await make())
    const m = await until(async () => {
      const all = await modules(host)
      return all.app.lastError?.code === code && all
    }, `${label}: lastError ${code}`)
    assert.equal(m.app.state, 'running', label)
    assert.equal(m.app.generation, 1, `${label}: the old generation still serves`)
    assert.equal((await body(host, '/app')).generation, 1)
    assert.ok(existsSync(tmp), `${label}: the refused .tmp stays`)
    assert.deepEqual(
      await readFile(path.join(modulesOf(root), 'app.zip')),
      good,
      `${label}: bundle untouched`,
    )
    const rec = host.logs().find((r) => r.code === code && r.module === 'app')
    assert.ok(rec, `${label}: a log record with the code and the module`)
    await rm(tmp)
  }

  // a new cycle: base now depends on app
  await writeFile(
    path.join(modulesOf(root), 'base.zip.tmp'),
    await readFile(await variant(root, 'base', 'cycle', { fields: { 'depends-on': 'app' } })),
  )
  await until(
    async () => (await modules(host)).base.lastError?.code === 'NYALA_ERR_DEPENDENCY_CYCLE',
    'cycle',
  )
  assert.equal((await body(host, '/base')).generation, 1)
  await rm(path.join(modulesOf(root), 'base.zip.tmp'))

  // the next good bundle clears lastError
  await copyFile(good2, tmp)
  await until(async () => (await body(host, '/app')).tag === 'ok', 'good bundle after the broken ones')
  assert.equal((await modules(host)).app.lastError, null)
})

test('two modules failed on one prefix come back when a reload moves one of them', async (t) => {
  const root = await makeRoot(t, reloadProps())
  await deploy(root, 'left', { fields: { prefix: '/shared' } })
  await deploy(root, 'right', { fields: { prefix: '/shared' } })
  const host = await startHost(t, root)
  let m = await modules(host)
  assert.equal(m.left.error?.code, 'NYALA_ERR_PREFIX_CONFLICT')
  assert.equal(m.right.error?.code, 'NYALA_ERR_PREFIX_CONFLICT')
  assert.equal((await request(host.url('/shared'))).status, 404)

  // right moves to a prefix of its own; left still claims /shared, which nobody owns now
  await copyFile(
    await variant(root, 'right', 'moved', { fields: { prefix: '/right' } }),
    path.join(modulesOf(root), 'right.zip'),
  )
  await until(async () => (await body(host, '/right'))?.tag === 'moved', 'right on its own prefix')
  const res = await request(host.admin('/modules/left/reload?force=true'), { method: 'POST' })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.result, 'reloaded')
  assert.equal((await request(host.url('/shared'))).status, 200)
  m = await modules(host)
  assert.equal(m.left.state, 'running')
  assert.equal(m.left.prefix, '/shared')

  // and now right may not take /shared back: left owns it
  await copyFile(
    await variant(root, 'right', 'back', { fields: { prefix: '/shared' } }),
    path.join(modulesOf(root), 'right.zip'),
  )
  m = await until(async () => {
    const all = await modules(host)
    return all.right.lastError?.code === 'NYALA_ERR_PREFIX_CONFLICT' && all
  }, 'right refused on /shared')
  assert.equal((await body(host, '/right')).tag, 'moved', 'right keeps serving where it was')
  assert.equal(m.left.state, 'running')

  // a running module that moves leaves nothing behind on its old prefix
  await copyFile(
    await variant(root, 'left', 'elsewhere', { fields: { prefix: '/left' } }),
    path.join(modulesOf(root), 'left.zip'),
  )
  await until(async () => (await body(host, '/left'))?.tag === 'elsewhere', 'left on its new prefix')
  const gone = await request(host.url('/shared'))
  assert.equal(gone.status, 404)
  assert.equal(gone.body.code, 'NYALA_ERR_NO_MODULE')
})

test('default type: a new bundle is loaded, a removed one is unloaded with its dependents', async (t) => {
  const root = await makeRoot(t, reloadProps())
  await deploy(root, 'lib')
  await deploy(root, 'user', { fields: { 'depends-on': 'lib' } })
  await deploy(root, 'other')
  const host = await startHost(t, root)

  await copyFile(await variant(root, 'extra', 'new'), path.join(modulesOf(root), 'extra.zip'))
  await until(async () => (await request(host.url('/extra'))).status === 200, 'new bundle served')
  assert.equal((await body(host, '/extra')).generation, 1)

  // a second bundle of a deployed module is refused, the first one keeps serving
  await copyFile(await variant(root, 'other', 'two'), path.join(modulesOf(root), 'other-2.0.zip'))
  await until(
    async () => (await modules(host)).other.lastError?.code === 'NYALA_ERR_BUNDLE_DUPLICATE',
    'duplicate refused',
  )
  assert.equal((await body(host, '/other')).generation, 1)
  assert.ok(existsSync(path.join(modulesOf(root), 'other.zip')))
  await rm(path.join(modulesOf(root), 'other-2.0.zip'))

  await rm(path.join(modulesOf(root), 'lib.zip'))
  await until(async () => (await request(host.url('/lib'))).status === 404, 'removed module gone')
  const m = await modules(host)
  assert.equal(m.lib, undefined)
  assert.equal(m.user.state, 'failed')
  assert.equal(m.user.error.code, 'NYALA_ERR_DEPENDENCY_MISSING')
  assert.equal((await request(host.url('/user'))).status, 503)
  assert.equal((await body(host, '/other')).generation, 1)

  // putting the dependency back brings its dependent back
  await copyFile(await variant(root, 'lib', 'back'), path.join(modulesOf(root), 'lib.zip'))
  await until(async () => (await request(host.url('/user'))).status === 200, 'dependent back')
})

test('handoff(ctx) hands state to the next generation as ctx.previous', async (t) => {
  const root = await makeRoot(t, reloadProps())
  const index = `module.exports = {
  async register (app, ctx) {
    const state = ctx.previous ?? { hits: 0 }
    app.get('/', async () => ({ generation: ctx.generation, hits: ++state.hits }))
    this.state = state
  },
  handoff () { return this.state }
}
`
  await deploy(root, 'counter', { files: { 'index.js': index } })
  const host = await startHost(t, root)
  await body(host, '/counter')
  await body(host, '/counter')
  const dir = await moduleSource(root, 'counter2', {
    fields: { version: '2.0.0' },
    files: { 'index.js': index },
  })
  await packWithNyala(dir, path.join(root, 'src', 'counter2.zip'))
  await copyFile(path.join(root, 'src', 'counter2.zip'), path.join(modulesOf(root), 'counter.zip'))
  let requests = 2
  const after = await until(async () => {
    requests++
    const b = await body(host, '/counter')
    return b.generation === 2 && b
  }, 'new generation')
  assert.equal(after.hits, requests, 'the count went on across the reload')
})

test('reload.all=false: only modules matched by reload.modules reload', async (t) => {
  const root = await makeRoot(t, reloadProps('reload.all=false\nreload.modules=pay*\n'))
  await deploy(root, 'payments')
  await deploy(root, 'search')
  const host = await startHost(t, root)
  await copyFile(await variant(root, 'search', 'a'), path.join(modulesOf(root), 'search.zip'))
  await copyFile(await variant(root, 'payments', 'a'), path.join(modulesOf(root), 'payments.zip'))
  await until(async () => (await body(host, '/payments')).tag === 'a', 'selected module reloaded')
  await until(
    () => host.logs().some((r) => r.module === 'search' && /not matched by reload.modules/.test(r.msg ?? '')),
    'the decision for search is logged',
  )
  assert.equal((await body(host, '/search')).generation, 1)
  await mkdir(path.join(root, 'unused'), { recursive: true })
})

test('polling mode: an exploded directory reloads when a counted file changes, not for an excluded one', async (t) => {
  const root = await makeRoot(
    t,
    reloadProps(
      'auto.reload.polling=true\nauto.reload.check.interval=0.1\nauto.reload.extension.excludes=md\n',
    ),
  )
  const dir = path.join(modulesOf(root), 'site')
  await mkdir(dir)
  const index = (tag) =>
    `module.exports = { async register (app, ctx) { app.get('/', async () => ({ generation: ctx.generation, tag: '${tag}' })) } }\n`
  await writeFile(path.join(dir, 'module.properties'), 'version=1.0.0\n')
  await writeFile(path.join(dir, 'index.js'), index('a'))
  await writeFile(path.join(dir, 'NOTES.md'), 'first\n')
  const host = await startHost(t, root)
  assert.equal((await body(host, '/site')).tag, 'a')

  await writeFile(path.join(dir, 'NOTES.md'), 'second\n')
  await writeFile(path.join(dir, 'index.js'), index('b'))
  await until(async () => (await body(host, '/site')).tag === 'b', 'exploded directory reloaded by polling')
  const checks = host.logs().filter((r) => r.reloadDebug && typeof r.file === 'string')
  assert.ok(checks.some((r) => r.file.endsWith('index.js')))
  assert.ok(!checks.some((r) => r.file.endsWith('NOTES.md')), 'an excluded extension is not even looked at')
})

test('reloadable=false holds even against a new bundle that leaves the key out; failed attempts use no generation number', async (t) => {
  const root = await makeRoot(t, reloadProps('auto.reload.monitoring.type=tmpfile\n'))
  await deploy(root, 'fixed', { fields: { reloadable: 'false' } })
  await deploy(root, 'free')
  const host = await startHost(t, root)
  const fixedTmp = path.join(modulesOf(root), 'fixed.zip.tmp')
  await copyFile(await variant(root, 'fixed', 'unlocked', { fields: { version: '2.0.0' } }), fixedTmp)
  await until(
    () => host.logs().some((r) => r.module === 'fixed' && /running bundle/.test(r.reason ?? '')),
    'the decision to leave fixed alone',
  )
  const explicit = await request(host.admin('/modules/fixed/reload'), { method: 'POST' })
  assert.equal(explicit.status, 409)
  assert.equal(explicit.body.code, 'NYALA_ERR_NOT_RELOADABLE')
  assert.equal((await body(host, '/fixed')).generation, 1)
  assert.ok(existsSync(fixedTmp), 'the refused .tmp stays where it was')

  // a failed reload, then a good one: the serving generations are 1 then 2
  const freeTmp = path.join(modulesOf(root), 'free.zip.tmp')
  await copyFile(
    await variant(root, 'free', 'bad', {
      files: { 'index.js': 'module.exports = () => { throw new Error("no") }\n' },
    }),
    freeTmp,
  )
  await until(async () => (await modules(host)).free.lastError !== null, 'failed reload')
  await rm(freeTmp)
  await copyFile(await variant(root, 'free', 'good'), freeTmp)
  const good = await until(async () => {
    const b = await body(host, '/free')
    return b.tag === 'good' && b
  }, 'good reload')
  assert.equal(good.generation, 2)
})

test('back-to-back renames over a bundle are all seen, even when one lands while the last reload swaps', async (t) => {
  const { packDirectory } = await import('../dist/bundle/pack.js')
  const root = await makeRoot(t, reloadProps())
  await deploy(root, 'app')
  const host = await startHost(t, root)
  const versions = 40
  const zips = []
  for (let v = 1; v <= versions; v++) {
    const dir = await moduleSource(root, `app-v${v}`, {
      files: {
        'index.js': `module.exports = { async register (app, ctx) { app.get('/', async () => ({ generation: ctx.generation, v: ${v} })) } }\n`,
      },
    })
    zips.push(await packDirectory(dir, { out: path.join(root, 'src', `app-v${v}.zip`) }))
  }
  const writes = path.join(root, 'writes')
  await mkdir(writes)
  const target = path.join(modulesOf(root), 'app.zip')
  for (let v = 1; v <= versions; v++) {
    const staged = path.join(writes, 'app.zip')
    await copyFile(zips[v - 1], staged)
    await rename(staged, target)
    // the next rename goes out the moment this version answers, as a deploy script would
    const deadline = Date.now() + 10_000
    while ((await body(host, '/app')).v !== v) {
      assert.ok(Date.now() < deadline, `version ${v} not served within 10 s`)
      await sleep(2)
    }
  }
  assert.equal((await modules(host)).app.lastError, null)
})

test('bundle.reader.prime: zip bundles are read ahead after start-up, directories are not; false turns it off', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nadmin.host=127.0.0.1\n')
  await deploy(root, 'one')
  await deploy(root, 'two')
  // an exploded directory bundle is read entry by entry on every reload: nothing to read ahead
  await mkdir(path.join(modulesOf(root), 'three'))
  await writeFile(path.join(modulesOf(root), 'three', 'module.properties'), 'version=1.0.0\n')
  await writeFile(
    path.join(modulesOf(root), 'three', 'index.js'),
    "module.exports = { async register (app) { app.get('/', async () => ({ ok: true })) } }\n",
  )
  const host = await startHost(t, root)
  const line = () => host.logs().find((r) => /read ahead/.test(r.msg ?? ''))
  await until(async () => line() !== undefined, 'the read-ahead log line')
  assert.equal(line().kept, 2, 'the two zip bundles, not the directory')
  assert.ok(line().heldBytes > 0)
  await host.stop()

  await writeFile(
    path.join(root, 'config', 'impala.properties'),
    'admin.port=0\nport=0\nhost=127.0.0.1\nadmin.host=127.0.0.1\nbundle.reader.prime=false\n',
  )
  const off = await startHost(t, root)
  // a reload's read goes through the reader after start-up: by its answer a read ahead would have logged
  const res = await fetch(off.admin('/modules/one/reload?force=true'), { method: 'POST' })
  assert.equal(res.status, 200, await res.text())
  assert.equal(
    off.logs().find((r) => /read ahead/.test(r.msg ?? '')),
    undefined,
  )
})
