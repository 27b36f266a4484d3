// End to end: modules deployed as bundles (nyala pack, zip -r, jar cf, exploded
// directories) start in dependency order, see their dependencies, their own
// files and configuration, and are served under their prefixes by the real CLI.
import assert from 'node:assert/strict'
import { cp, readdir, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithJar,
  packWithNyala,
  packWithZip,
  projectRoot,
  request,
  startHost,
} from './helpers.js'

/** Stops the host with `signal`, waits for its output to end, and checks exit code 0. */
async function stopOk(host, signal = 'SIGTERM') {
  const closed = new Promise((resolve) => host.child.once('close', resolve))
  const { code } = await host.stop(signal)
  await closed
  assert.equal(code, 0, host.stderr())
}

async function getJson(host, url, status = 200) {
  const res = await request(host.url(url))
  assert.equal(res.status, status, `${url}: ${res.text}`)
  return res.body
}

/** The host's "module X started" records, in log order. */
const startedRecords = (host) =>
  host.logs().filter((r) => typeof r.ms === 'number' && /^module \S+ \S+ started/.test(r.msg))

/** Polls the log (no timing assertion) until a record matches, bounded by `ms`. */
async function waitForLog(host, predicate, ms = 10_000) {
  const until = Date.now() + ms
  for (;;) {
    const found = host.logs().find(predicate)
    if (found) return found
    if (Date.now() > until) throw new Error(`no matching log record in ${ms} ms:\n${host.stdout()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

test('a dependency chain and a standalone module start in order and share through ctx.use', async (t) => {
  const root = await makeRoot(t)
  await Promise.all([
    deploy(root, 'core', {
      files: {
        'index.js': `module.exports = { async register (app, ctx) {
  ctx.provide({ token: 'core-token-42', add: (a, b) => a + b })
  app.get('/', async () => ({ module: ctx.name }))
} }
`,
      },
    }),
    deploy(root, 'customers', {
      fields: { 'depends-on': 'core' },
      files: {
        'index.js': `module.exports = { async register (app, ctx) {
  const core = ctx.use('core')
  ctx.provide({ label: (id) => 'customer-' + core.add(id, 1000) })
  app.get('/', async () => ({ module: ctx.name, token: core.token, sum: core.add(2, 3) }))
} }
`,
      },
    }),
    deploy(root, 'billing', {
      fields: { version: '2.1.0', 'depends-on': 'customers, core' },
      files: {
        'index.js': `module.exports = { async register (app, ctx) {
  const customers = ctx.use('customers')
  const core = ctx.use('core')
  app.get('/', async () => ({ module: ctx.name, customer: customers.label(7), token: core.token }))
} }
`,
      },
    }),
    deploy(root, 'standalone'),
  ])
  const host = await startHost(t, root)
  assert.deepEqual(await getJson(host, '/core'), { module: 'core' })
  assert.deepEqual(await getJson(host, '/customers'), { module: 'customers', token: 'core-token-42', sum: 5 })
  assert.deepEqual(await getJson(host, '/billing'), {
    module: 'billing',
    customer: 'customer-1007',
    token: 'core-token-42',
  })
  assert.equal((await getJson(host, '/standalone')).module, 'standalone')

  const started = startedRecords(host)
  const names = started.map((r) => r.module)
  assert.deepEqual([...names].sort(), ['billing', 'core', 'customers', 'standalone'])
  assert.ok(names.indexOf('core') < names.indexOf('customers'), names.join(','))
  assert.ok(names.indexOf('customers') < names.indexOf('billing'), names.join(','))
  const versions = { core: '1.0.0', customers: '1.0.0', billing: '2.1.0', standalone: '1.0.0' }
  for (const r of started) {
    assert.equal(r.version, versions[r.module])
    assert.equal(r.generation, 1)
    assert.equal(typeof r.ms, 'number')
    assert.ok(r.ms >= 0)
  }
  await stopOk(host)
})

const resourceModule = {
  'module.properties': 'version=1.0.0\n',
  'index.js': `'use strict'
const path = require('node:path')
const y = require('./data/y.json')
const z = require('./lib/z')
const leftpad = require('leftpad')
const fastify = require('fastify')
module.exports = {
  async register (app, ctx) {
    const x = ctx.resource('data/x.txt').toString('utf8')
    app.get('/', async () => ({
      x,
      y,
      z: z.shout('quiet'),
      joined: path.posix.join('a', 'b', '..', 'c'),
      fastify: typeof fastify,
      leftpad: leftpad('7', 3, '0'),
    }))
  },
}
`,
  'data/x.txt': 'text from a resource\n',
  'data/y.json': '{ "answer": 42, "list": [1, 2] }\n',
  'lib/z.js': "exports.shout = (s) => s.toUpperCase() + '!'\n",
  'node_modules/leftpad/package.json': '{ "name": "leftpad", "main": "index.js" }\n',
  'node_modules/leftpad/index.js':
    "module.exports = (s, n, c = ' ') => String(s).length >= n ? String(s) : c.repeat(n - String(s).length) + s\n",
}

test('resources, JSON, relative, built-in, host and bundled packages load from bundles of all three packers', async (t) => {
  const root = await makeRoot(t)
  const dir = await moduleSource(root, 'resources', { files: resourceModule })
  await Promise.all([
    packWithNyala(dir, path.join(modulesOf(root), 'res-nyala.zip')),
    packWithZip(dir, path.join(modulesOf(root), 'res-zip.zip')),
    packWithJar(dir, path.join(modulesOf(root), 'res-jar.jar')),
  ])
  const host = await startHost(t, root)
  const expected = {
    x: 'text from a resource\n',
    y: { answer: 42, list: [1, 2] },
    z: 'QUIET!',
    joined: 'a/c',
    fastify: 'function',
    leftpad: '007',
  }
  for (const name of ['res-nyala', 'res-zip', 'res-jar']) {
    assert.deepEqual(await getJson(host, `/${name}`), expected, name)
  }
  assert.equal(startedRecords(host).length, 3)
  await stopOk(host)
})

test('an exploded directory in modules/ serves', async (t) => {
  const root = await makeRoot(t)
  const dir = await moduleSource(root, 'exploded', { files: resourceModule })
  await cp(dir, path.join(modulesOf(root), 'exploded'), { recursive: true })
  const host = await startHost(t, root)
  const body = await getJson(host, '/exploded')
  assert.equal(body.x, 'text from a resource\n')
  assert.equal(body.leftpad, '007')
  const [rec] = startedRecords(host)
  assert.equal(rec.module, 'exploded')
  assert.equal(rec.bundle, path.join(modulesOf(root), 'exploded'))
  await stopOk(host)
})

test('the module name comes from the file name, and the longest prefix wins', async (t) => {
  const root = await makeRoot(t)
  const routes = (who) => ({
    'index.js': `module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ who: '${who}', module: ctx.name, version: ctx.version }))
  app.get('/x', async () => ({ who: '${who}', route: 'x' }))
} }
`,
  })
  await Promise.all([
    packWithJar(
      await moduleSource(root, 'billing-src', { fields: { version: '1.2.0' }, files: routes('billing') }),
      path.join(modulesOf(root), 'billing-1.2.0.jar'),
    ),
    deploy(root, 'api', { files: routes('api') }),
    deploy(root, 'apiv2', { fields: { prefix: '/api/v2' }, files: routes('apiv2') }),
  ])
  const host = await startHost(t, root)
  assert.deepEqual(await getJson(host, '/billing'), { who: 'billing', module: 'billing', version: '1.2.0' })
  assert.deepEqual(await getJson(host, '/billing/x'), { who: 'billing', route: 'x' })
  assert.deepEqual(await getJson(host, '/api/v2/x'), { who: 'apiv2', route: 'x' })
  assert.deepEqual(await getJson(host, '/api/x'), { who: 'api', route: 'x' })
  assert.equal((await getJson(host, '/api/v2')).who, 'apiv2')
  assert.equal((await getJson(host, '/api')).who, 'api')
  // a sibling that only shares characters is not under the prefix
  assert.equal((await request(host.url('/api/v2x'))).status, 404)
  await stopOk(host)
})

test('a path under no prefix answers 404 JSON with NYALA_ERR_NO_MODULE', async (t) => {
  const root = await makeRoot(t)
  await deploy(root, 'present')
  const host = await startHost(t, root)
  assert.equal((await getJson(host, '/present')).module, 'present')
  const body = await getJson(host, '/absent/thing?q=1', 404)
  assert.equal(body.code, 'NYALA_ERR_NO_MODULE')
  assert.equal(body.statusCode, 404)
  assert.match(body.message, /no module serves \/absent\/thing$/)
  await stopOk(host)
})

test('ctx.config comes from config/<name>.properties', async (t) => {
  const root = await makeRoot(t)
  await cp(
    path.join(projectRoot, 'config', 'billing.properties'),
    path.join(root, 'config', 'billing.properties'),
  )
  await writeFile(
    path.join(root, 'config', 'settings.properties'),
    'greeting=hi there\nlimit=5   # a comment\n',
  )
  const echo = {
    'index.js': "module.exports = { async register (app, ctx) { app.get('/', async () => ctx.config) } }\n",
  }
  await Promise.all([
    deploy(root, 'settings', { files: echo }),
    deploy(root, 'billing', { files: echo }),
    deploy(root, 'unset', { files: echo }),
  ])
  const host = await startHost(t, root)
  assert.deepEqual(await getJson(host, '/settings'), { greeting: 'hi there', limit: '5' })
  assert.deepEqual(await getJson(host, '/billing'), { currency: 'EUR' })
  assert.deepEqual(await getJson(host, '/unset'), {})
  await stopOk(host)
})

test('ctx.use of an undeclared dependency fails register with NYALA_ERR_UNDECLARED_DEPENDENCY', async (t) => {
  const root = await makeRoot(t)
  await Promise.all([
    deploy(root, 'core'),
    deploy(root, 'nosy', {
      files: {
        'index.js':
          "module.exports = { async register (app, ctx) { ctx.use('core'); app.get('/', async () => 'no') } }\n",
      },
    }),
  ])
  const host = await startHost(t, root)
  assert.equal((await getJson(host, '/core')).module, 'core')
  const recs = host.logs().filter((r) => r.code === 'NYALA_ERR_MODULE_REGISTER_FAILED' && r.module === 'nosy')
  assert.equal(recs.length, 1, host.stdout())
  assert.equal(recs[0].bundle, path.join(modulesOf(root), 'nosy.zip'))
  assert.ok(recs[0].msg.includes('NYALA_ERR_UNDECLARED_DEPENDENCY'), recs[0].msg)
  assert.ok(recs[0].msg.includes('"core"'), recs[0].msg)
  assert.equal((await getJson(host, '/nosy', 503)).code, 'NYALA_ERR_MODULE_UNAVAILABLE')
  await stopOk(host)
})

const slowModule = {
  'index.js': `module.exports = {
  async register (app, ctx) {
    ctx.onStop(() => ctx.log.info('slow onStop ran'))
    app.get('/wait', async () => {
      ctx.log.info('slow request begun')
      await new Promise((resolve) => setTimeout(resolve, 500))
      return { done: true }
    })
  },
  async stop (ctx) { ctx.log.info('slow stop ran') },
}
`,
}

/** A GET on its own connection that asks the server to close it after the response. */
function getOnce(url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

test('SIGTERM lets an in-flight request finish, runs stop and onStop, and exits 0', async (t) => {
  const root = await makeRoot(t)
  await deploy(root, 'slow', { files: slowModule })
  const host = await startHost(t, root)
  const pending = getOnce(host.url('/slow/wait'))
  await waitForLog(host, (r) => r.msg === 'slow request begun')
  const closed = new Promise((resolve) => host.child.once('close', resolve))
  const exited = host.stop('SIGTERM')
  const res = await pending
  assert.equal(res.status, 200)
  assert.deepEqual(res.body, { done: true })
  const { code } = await exited
  await closed
  assert.equal(code, 0, host.stderr())

  const logs = host.logs()
  const at = (pred) => logs.findIndex(pred)
  const sigterm = at((r) => r.signal === 'SIGTERM')
  const stopRan = at((r) => r.msg === 'slow stop ran' && r.module === 'slow')
  const onStopRan = at((r) => r.msg === 'slow onStop ran' && r.module === 'slow')
  const stopped = at((r) => r.msg === 'module slow stopped')
  assert.ok(sigterm >= 0, 'SIGTERM record')
  assert.ok(stopRan > sigterm, 'stop ran after SIGTERM')
  assert.ok(onStopRan > stopRan, `onStop ran after stop\n${host.stdout()}`)
  assert.ok(stopped > onStopRan, 'host logged the module stopped last')
  assert.equal(logs[stopRan].generation, 1)
  assert.equal(logs.at(-1).msg, 'stopped')
})

test('SIGTERM does not wait out shutdown.grace.period for a keep-alive client whose request is done', async (t) => {
  // a grace period far beyond the bound below: the host should exit as soon as the request is done
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=120\n')
  await deploy(root, 'slow', { files: slowModule })
  const host = await startHost(t, root)
  const pending = request(host.url('/slow/wait')) // fetch keeps its connection alive
  await waitForLog(host, (r) => r.msg === 'slow request begun')
  const exited = host.stop('SIGTERM')
  const res = await pending
  assert.equal(res.status, 200)
  let bound
  const outcome = await Promise.race([
    exited,
    new Promise((resolve) => {
      bound = setTimeout(resolve, 10_000, 'still running')
    }),
  ])
  clearTimeout(bound)
  if (outcome === 'still running') host.child.kill('SIGKILL')
  assert.notEqual(outcome, 'still running', 'host still running 10 s after its last request ended')
  assert.equal(outcome.code, 0)
})

test('the examples serve: core, customers, billing (with its config), hello and quotes (TypeScript)', async (t) => {
  const root = await makeRoot(t)
  const examples = path.join(projectRoot, 'examples')
  const names = (await readdir(examples, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
  assert.deepEqual([...names].sort(), ['billing', 'core', 'customers', 'hello', 'quotes'])
  await Promise.all(
    names.map((n) => packWithNyala(path.join(examples, n), path.join(modulesOf(root), `${n}.zip`))),
  )
  await cp(
    path.join(projectRoot, 'config', 'billing.properties'),
    path.join(root, 'config', 'billing.properties'),
  )
  const host = await startHost(t, root)

  assert.equal((await getJson(host, '/core')).module, 'core')
  const customers = await getJson(host, '/customers')
  assert.deepEqual(
    customers.map((c) => c.name),
    ['Ada Lovelace', 'Alan Turing'],
  )
  assert.deepEqual(await getJson(host, '/billing/invoices'), [])
  const hello = await getJson(host, '/hello?name=Nyala')
  assert.equal(hello.message, 'Hello, Nyala!')
  assert.deepEqual(await getJson(host, '/quotes?n=1'), {
    text: 'Make it work, make it right, make it fast.',
    by: 'Kent Beck',
    generation: 1,
  })
  assert.deepEqual(await getJson(host, '/quotes/count'), { count: 2 })
  const page = await request(host.url('/hello/page'))
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type'), /text\/html/)

  const created = await request(host.url('/billing/invoices'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ customerId: 1, cents: 4200 }),
  })
  assert.equal(created.status, 201, created.text)
  assert.equal(typeof created.body.id, 'number')
  const invoices = await getJson(host, '/billing/invoices')
  assert.equal(invoices.length, 1)
  assert.deepEqual(invoices[0], {
    id: created.body.id,
    customerId: 1,
    cents: 4200,
    customer: 'Ada Lovelace',
    total: '42.00 EUR',
  })
  await stopOk(host)
})

test('module logs: ctx.log, app.log, plugin instances and req.log carry the module; errors are logged; log.requests adds request lines', async (t) => {
  const talk = {
    'index.js': `module.exports = { async register (app, ctx) {
  ctx.log.info('from ctx')
  app.log.info('from app')
  await app.register(async (child) => {
    child.get('/child', async () => { child.log.info('from a plugin'); return { ok: true } })
  })
  app.get('/', async (req) => { req.log.info({ marker: 1 }, 'from a request'); return { ok: true } })
  app.get('/boom', async () => { throw new Error('kaboom') })
  app.get('/quiet', { logLevel: 'error' }, async (req) => {
    req.log.info('below the route level')
    req.log.error('at the route level')
    return { ok: true }
  })
} }
`,
  }
  for (const logRequests of [false, true]) {
    const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nlog.requests=${logRequests}\n`)
    await deploy(root, 'talk', { files: talk })
    const host = await startHost(t, root)
    for (const p of ['/talk', '/talk/child', '/talk/quiet'])
      assert.deepEqual(await getJson(host, p), { ok: true })
    const boom = await request(host.url('/talk/boom'))
    assert.equal(boom.status, 500)
    const of = (msg) => waitForLog(host, (r) => r.msg === msg && r.module === 'talk' && r.generation === 1)
    await of('from ctx')
    await of('from app')
    assert.ok(
      (await of('from a plugin')).reqId === undefined,
      'app-level logger of a plugin has no request id',
    )
    const fromRequest = await of('from a request')
    assert.equal(fromRequest.marker, 1)
    assert.match(String(fromRequest.reqId), /^req-/)
    assert.match(String((await of('at the route level')).reqId), /^req-/)
    const failed = await waitForLog(host, (r) => r.module === 'talk' && r.err?.message === 'kaboom')
    assert.equal(failed.level, 50)
    assert.match(String(failed.reqId), /^req-/)
    const completed = () => host.logs().filter((r) => r.msg === 'request completed' && r.module === 'talk')
    if (logRequests) {
      const done = await waitForLog(host, (r) => r.msg === 'request completed' && r.module === 'talk')
      assert.equal(typeof done.responseTime, 'number')
    } else {
      await stopOk(host)
      assert.equal(completed().length, 0, 'no request lines unless log.requests=true')
    }
    assert.equal(host.logs().filter((r) => r.msg === 'below the route level').length, 0)
    if (logRequests) await stopOk(host)
  }
})

test('an onStop callback that never settles is given module.stop.timeout: each old generation stops and says so', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nmodule.stop.timeout=0.5\n')
  await deploy(root, 'stuck', {
    files: {
      'index.js': `let ticks = 0
module.exports = { async register (app, ctx) {
  ctx.setInterval(() => { ticks++ }, 10)
  ctx.onStop(() => new Promise(() => {}))
  app.get('/', async () => ({ generation: ctx.generation, ticks }))
} }
`,
    },
  })
  const host = await startHost(t, root)
  for (const generation of [2, 3]) {
    const reload = await request(host.admin('/modules/stuck/reload?force=true'), { method: 'POST' })
    assert.equal(reload.status, 200, reload.text)
    assert.equal((await request(host.url('/stuck/'))).body.generation, generation)
  }
  // both old generations stopped (the second reload waited for nothing the first left behind)
  const stopped = () =>
    host
      .logs()
      .filter((r) => r.module === 'stuck' && /stopped$/.test(r.msg ?? ''))
      .map((r) => r.generation)
  const start = Date.now()
  while (stopped().length < 2 && Date.now() - start < 20_000) await new Promise((r) => setTimeout(r, 100))
  assert.deepEqual(stopped().sort(), [1, 2], host.stdout())
  const said = host
    .logs()
    .filter(
      (r) => r.code === 'NYALA_ERR_MODULE_STOP_FAILED' && /did not settle within 500 ms/.test(r.message),
    )
  assert.equal(said.length, 2, 'each stuck onStop is said')
})
