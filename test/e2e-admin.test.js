// The admin API and the commands that use it, end to end against the real CLI:
// the bearer token, the module table, explicit reloads (unchanged, forced,
// reloaded, failed with lastError), unregister/register, reloadable=false,
// /metrics, the /events stream, `nyala status` and `nyala reload`, SIGHUP, and
// blocking mode. Real processes, real bundles, 127.0.0.1 and port 0; nothing
// asserts a timing.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, rename } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  packWithZip,
  request,
  runCli,
  startHost,
} from './helpers.js'

// ---------------------------------------------------------------------------------------------
// Helpers of this file

/** Polls `fn` until it returns a truthy value, at most `ms`; returns that value. */
async function until(fn, what, ms = 10_000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(25)
  }
}

const get = async (host, p) => (await request(host.url(p))).body

/** An admin API call; `token` adds the bearer header. */
function admin(host, p, { method = 'GET', token } = {}) {
  return request(host.admin(p), {
    method,
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  })
}

async function moduleTable(host, token) {
  const res = await admin(host, '/modules', { token })
  assert.equal(res.status, 200, res.text)
  return Object.fromEntries(res.body.modules.map((m) => [m.name, m]))
}

const indexOf = (tag, extra = '') =>
  `module.exports = { async register (app, ctx) { ${extra}app.get('/', async () => ({ module: ctx.name, generation: ctx.generation, version: ctx.version, tag: ${JSON.stringify(tag)} })) } }\n`

/** A bundle of `name` answering `{ module, generation, version, tag }`, packed under src/ (not deployed). */
async function variant(root, name, tag, { fields = {}, files = {}, pack = packWithNyala } = {}) {
  const dir = await moduleSource(root, `${name}-${tag}`, {
    fields,
    files: { 'index.js': indexOf(tag), ...files },
  })
  return pack(dir, path.join(root, 'src', `${name}-${tag}.zip`))
}

/** A bundle of `name` whose register throws. */
const throwing = (root, name, tag = 'throws') =>
  variant(root, name, tag, {
    files: { 'index.js': `module.exports = { async register () { throw new Error('boom in register') } }\n` },
  })

/** Puts `zip` in modules/ as `<name>.zip` in one step (a rename), so a watcher sees one whole file. */
async function install(root, name, zip) {
  const temp = path.join(modulesOf(root), `.${name}.zip.partial`)
  await copyFile(zip, temp)
  await rename(temp, path.join(modulesOf(root), `${name}.zip`))
}

/** Stops the host and checks it exited cleanly. */
async function stopOk(host) {
  const { code } = await host.stop('SIGTERM')
  assert.equal(code, 0, host.stderr())
}

/** A 127.0.0.1 port nothing listens on (bound, then released). */
async function deadPort() {
  const server = net.createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

/**
 * Opens `GET /events` and collects `{ event, data }` records as they come.
 * Resolves once the stream's opening comment arrived; aborted in `t.after`.
 */
async function openEvents(t, host, token) {
  const controller = new AbortController()
  t.after(() => controller.abort())
  const res = await fetch(host.admin('/events'), {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    signal: controller.signal,
  })
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/)
  const events = []
  let opened = false
  let buffer = ''
  const decoder = new TextDecoder()
  const reader = res.body.getReader()
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += decoder.decode(value, { stream: true })
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (block.startsWith(':')) {
            opened = true
            continue
          }
          const event = /^event: (.*)$/m.exec(block)?.[1]
          const data = /^data: (.*)$/m.exec(block)?.[1]
          events.push({ event, data: data === undefined ? undefined : JSON.parse(data) })
        }
      }
    } catch {
      // aborted at the end of the test
    }
  })()
  await until(() => opened, 'the event stream to open')
  return {
    events,
    /** The phases of reload `id`, in order. */
    phases: (id) => events.filter((e) => e.data?.id === id).map((e) => e.event),
    close: () => controller.abort(),
  }
}

/** Tracks a promise: `p.settled` turns true once it settles. */
function tracked(promise) {
  const box = { settled: false }
  box.promise = promise.finally(() => {
    box.settled = true
  })
  return box
}

const baseProps = 'port=0\nhost=127.0.0.1\n'
const watchProps = `${baseProps}auto.reload.modules=true\n`

// ---------------------------------------------------------------------------------------------
// Tests

test('GET /modules, /modules/:name, /health, /ready; unknown modules are 404', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'core', { fields: { version: '1.2.3' } })
  await deploy(root, 'app', { fields: { 'depends-on': 'core', prefix: '/shop' } })
  const host = await startHost(t, root)
  assert.equal((await get(host, '/shop')).generation, 1)
  assert.equal((await get(host, '/shop')).generation, 1)

  const res = await admin(host, '/modules')
  assert.equal(res.status, 200)
  assert.deepEqual(Object.keys(res.body), ['modules'])
  const [core, app] = res.body.modules
  assert.deepEqual(
    res.body.modules.map((m) => m.name),
    ['core', 'app'],
    'start order',
  )
  assert.equal(core.version, '1.2.3')
  assert.equal(core.state, 'running')
  assert.equal(core.generation, 1)
  assert.equal(core.prefix, '/core')
  assert.deepEqual(core.dependsOn, [])
  assert.equal(core.reloadable, true)
  assert.equal(core.registered, true)
  assert.equal(core.inflight, 0)
  assert.equal(core.lastReload, null)
  assert.equal(core.lastError, null)
  assert.equal(app.prefix, '/shop')
  assert.deepEqual(app.dependsOn, ['core'])
  assert.equal(app.served, 2, 'the two requests to /shop')
  assert.equal(core.served, 0)
  // GET /stats, the console's poll between its full updates: the same request counts, and the minute's figures
  const stats = await admin(host, '/stats')
  assert.equal(stats.status, 200)
  assert.deepEqual(stats.body.counts, { core: { inflight: 0, served: 0 }, app: { inflight: 0, served: 2 } })
  assert.equal(stats.body.modules.app.requests, 2)
  assert.equal(stats.body.modules.core.requests, 0)

  const one = await admin(host, '/modules/app')
  assert.equal(one.status, 200)
  assert.deepEqual(one.body, app, 'GET /modules/:name is the same object as its row in GET /modules')

  for (const [method, p] of [
    ['GET', '/modules/nope'],
    ['POST', '/modules/nope/reload'],
    ['POST', '/modules/nope/reload?force=true'],
    ['POST', '/modules/nope/unregister'],
    ['POST', '/modules/nope/register'],
  ]) {
    const r = await admin(host, p, { method })
    assert.equal(r.status, 404, `${method} ${p}: ${r.text}`)
    assert.equal(r.body.code, 'NYALA_ERR_UNKNOWN_MODULE', `${method} ${p}`)
    assert.match(r.body.message, /nope/)
  }

  // an explicit reload rebuilds the dependents too
  const chain = await admin(host, '/modules/core/reload?force=true', { method: 'POST' })
  assert.equal(chain.status, 200, chain.text)
  assert.deepEqual(chain.body.changed, ['core'])
  assert.deepEqual(chain.body.affected, ['core', 'app'])
  assert.deepEqual(chain.body.generations, { core: 2, app: 2 })
  assert.equal((await get(host, '/shop')).generation, 2)

  const health = await admin(host, '/health')
  assert.equal(health.status, 200)
  assert.equal(health.body.status, 'ok')
  assert.equal(health.body.pid, host.child.pid)
  const ready = await admin(host, '/ready')
  assert.equal(ready.status, 200)
  assert.deepEqual(ready.body, { ready: true, modules: 2, running: 2 })
  await stopOk(host)
})

test('a reload keeps the order of GET /modules and nyala status (dependencies first, then by name)', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'core')
  await deploy(root, 'app', { fields: { 'depends-on': 'core' } })
  await deploy(root, 'billing')
  const host = await startHost(t, root)
  const names = async () => (await admin(host, '/modules')).body.modules.map((m) => m.name)
  assert.deepEqual(await names(), ['core', 'app', 'billing'])
  // core and its dependent app are reloaded; billing is not: until 2026-11-30 the reloaded ones
  // moved to the end
  const forced = await runCli(['reload', 'core', '--force', '--root', root])
  assert.equal(forced.code, 0, forced.stderr)
  assert.deepEqual(await names(), ['core', 'app', 'billing'])
  const status = await runCli(['status', '--json', '--root', root])
  assert.equal(status.code, 0, status.stderr)
  assert.deepEqual(
    JSON.parse(status.stdout).modules.map((m) => m.name),
    ['core', 'app', 'billing'],
  )
})

test('admin.token: every route but /health and /ready wants the bearer token', async (t) => {
  const token = 's3cret-admin-token'
  const root = await makeRoot(t, `${baseProps}admin.token=${token}\n`)
  await deploy(root, 'solo')
  const host = await startHost(t, root)

  const routes = [
    ['GET', '/modules'],
    ['GET', '/modules/solo'],
    ['POST', '/modules/solo/reload?force=true'],
    ['POST', '/reload'],
    ['POST', '/modules/solo/unregister'],
    ['GET', '/metrics'],
    ['GET', '/events'],
  ]
  const wrong = [undefined, 'wrong', `${token.slice(0, -1)}X`, `${token}X`, '']
  for (const [method, p] of routes) {
    for (const given of wrong) {
      const res = await admin(host, p, { method, token: given })
      assert.equal(res.status, 401, `${method} ${p} with ${JSON.stringify(given)}: ${res.text}`)
      assert.equal(res.body.statusCode, 401)
      assert.equal(res.body.code, 'NYALA_ERR_ADMIN_UNAUTHORIZED')
      assert.match(res.body.message, /bearer token/)
    }
  }
  // the bare token, without "Bearer "
  const bare = await request(host.admin('/modules'), { headers: { authorization: token } })
  assert.equal(bare.status, 401)

  // nothing the refused calls asked for happened
  assert.equal((await get(host, '/solo')).generation, 1)
  const table = await moduleTable(host, token)
  assert.equal(table.solo.generation, 1)
  assert.equal(table.solo.registered, true)

  for (const p of ['/health', '/ready']) {
    const res = await admin(host, p)
    assert.equal(res.status, 200, `${p} without a token`)
  }

  const reloaded = await admin(host, '/modules/solo/reload?force=true', { method: 'POST', token })
  assert.equal(reloaded.status, 200, reloaded.text)
  assert.equal(reloaded.body.result, 'reloaded')
  assert.equal((await get(host, '/solo')).generation, 2)
  assert.equal((await admin(host, '/metrics', { token })).status, 200)

  // the commands: the token from the root's configuration, --token, NYALA_ADMIN_TOKEN
  const fromRoot = await runCli(['status', '--root', root])
  assert.equal(fromRoot.code, 0, fromRoot.stderr)
  assert.match(fromRoot.stdout, /^solo\s+running/m)
  const url = host.admin('')
  const without = await runCli(['status', '--admin', url], { env: { NYALA_ADMIN_TOKEN: '' } })
  assert.equal(without.code, 1)
  assert.match(without.stderr, /NYALA_ERR_ADMIN_UNAUTHORIZED/)
  const withFlag = await runCli(['status', '--admin', url, '--token', token])
  assert.equal(withFlag.code, 0, withFlag.stderr)
  const withEnv = await runCli(['reload', 'solo', '--admin', url], { env: { NYALA_ADMIN_TOKEN: token } })
  assert.equal(withEnv.code, 0, withEnv.stderr)
  assert.match(withEnv.stdout, /unchanged/)
  const reloadWithout = await runCli(['reload', 'solo', '--force', '--admin', url], {
    env: { NYALA_ADMIN_TOKEN: '' },
  })
  assert.equal(reloadWithout.code, 1)
  assert.match(reloadWithout.stderr, /NYALA_ERR_ADMIN_UNAUTHORIZED/)
  assert.equal((await get(host, '/solo')).generation, 2, 'the refused reload did nothing')
  await stopOk(host)
})

test('a non-loopback admin.host without admin.token refuses to start', async (t) => {
  const root = await makeRoot(t, `${baseProps}admin.host=0.0.0.0\n`)
  await deploy(root, 'solo')
  const res = await runCli(['start', '--root', root], { timeoutMs: 15_000 })
  assert.equal(res.code, 1, res.stdout)
  assert.match(res.stderr, /NYALA_ERR_CONFIG_VALUE/)
  assert.match(res.stderr, /admin\.token/)
})

/** A raw admin request with the Host and Origin a browser would send (fetch may not set Host). */
function browserRequest(host, p, { method = 'GET', headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(host.admin(p), { method, headers }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('without admin.token, a page of another site (DNS rebinding, a cross-site form) is refused', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  const host = await startHost(t, root)
  const own = `127.0.0.1:${host.adminPort}`
  // a name that resolved to 127.0.0.1 for a page of that site: its requests carry the site's name
  const rebound = await browserRequest(host, '/modules', {
    headers: { host: `evil.example:${host.adminPort}` },
  })
  assert.equal(rebound.status, 403, rebound.text)
  assert.match(rebound.text, /NYALA_ERR_ADMIN_FOREIGN_ORIGIN/)
  // a form posted from another site reaches 127.0.0.1 with its Origin
  const posted = await browserRequest(host, '/modules/solo/reload?force=true', {
    method: 'POST',
    headers: { host: own, origin: 'https://evil.example' },
  })
  assert.equal(posted.status, 403, posted.text)
  assert.equal((await get(host, '/solo')).generation, 1, 'the refused reload did nothing')
  // the console's page is served to it, but without the modules it draws for its own origin
  const page = await browserRequest(host, '/', { headers: { host: `evil.example:${host.adminPort}` } })
  assert.equal(page.status, 200)
  assert.doesNotMatch(page.text, /data-module=/)
  assert.match((await browserRequest(host, '/', { headers: { host: own } })).text, /data-module="solo"/)
  // the console's own requests, the CLI (no Origin) and localhost still work
  const same = await browserRequest(host, '/modules/solo/reload?force=true', {
    method: 'POST',
    headers: { host: own, origin: `http://${own}` },
  })
  assert.equal(same.status, 200, same.text)
  assert.equal(
    (await browserRequest(host, '/modules', { headers: { host: `localhost:${host.adminPort}` } })).status,
    200,
  )
  assert.equal((await admin(host, '/modules')).status, 200)
  await stopOk(host)
})

test('POST /modules/:name/reload: unchanged, forced, reloaded, failed (422) with lastError until the next success', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  await deploy(root, 'other')
  const [b, broken, c] = await Promise.all([
    variant(root, 'solo', 'b'),
    throwing(root, 'solo'),
    variant(root, 'solo', 'c'),
  ])
  // zip, not nyala pack, which refuses a syntax error itself: the host must refuse it too
  const syntax = await variant(root, 'solo', 'syntax', {
    files: { 'index.js': 'module.exports = {\n' },
    pack: packWithZip,
  })
  const host = await startHost(t, root)
  const post = (p) => admin(host, p, { method: 'POST' })

  const same = await post('/modules/solo/reload')
  assert.equal(same.status, 200, same.text)
  assert.equal(same.body.result, 'unchanged')
  assert.deepEqual(same.body.changed, [])
  assert.deepEqual(same.body.generations, {})
  assert.equal((await get(host, '/solo')).generation, 1)

  const forced = await post('/modules/solo/reload?force=true')
  assert.equal(forced.status, 200, forced.text)
  assert.equal(forced.body.result, 'reloaded')
  assert.deepEqual(forced.body.changed, ['solo'])
  assert.deepEqual(forced.body.affected, ['solo'])
  assert.deepEqual(forced.body.generations, { solo: 2 })
  assert.equal(typeof forced.body.ms, 'number')
  assert.equal((await get(host, '/solo')).generation, 2)
  let table = await moduleTable(host)
  assert.equal(table.solo.generation, 2)
  assert.equal(typeof table.solo.lastReload.at, 'string')
  assert.equal(typeof table.solo.lastReload.ms, 'number')
  assert.equal(table.other.generation, 1, 'another module is not touched')
  assert.equal(table.other.lastReload, null)

  await install(root, 'solo', b)
  const changed = await post('/modules/solo/reload')
  assert.equal(changed.status, 200, changed.text)
  assert.equal(changed.body.result, 'reloaded')
  assert.deepEqual(changed.body.generations, { solo: 3 })
  assert.deepEqual(await get(host, '/solo'), { module: 'solo', generation: 3, version: '1.0.0', tag: 'b' })

  // a register that throws: 422, the old generation keeps serving
  await install(root, 'solo', broken)
  const failed = await post('/modules/solo/reload')
  assert.equal(failed.status, 422, failed.text)
  assert.equal(failed.body.result, 'failed')
  assert.equal(failed.body.error.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  assert.equal(failed.body.error.module, 'solo')
  assert.match(failed.body.error.message, /boom in register/)
  assert.equal((await get(host, '/solo')).tag, 'b')
  table = await moduleTable(host)
  assert.equal(table.solo.state, 'running')
  assert.equal(table.solo.generation, 3)
  assert.equal(table.solo.lastError.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  assert.match(table.solo.lastError.message, /boom in register/)
  assert.ok(!Number.isNaN(Date.parse(table.solo.lastError.at)), 'lastError.at is a date')
  const firstAt = table.solo.lastError.at

  // a syntax error is refused before anything starts; lastError follows the latest failure
  await install(root, 'solo', syntax)
  const refused = await post('/reload')
  assert.equal(refused.status, 422, refused.text)
  assert.equal(refused.body.error.code, 'NYALA_ERR_MODULE_SYNTAX')
  table = await moduleTable(host)
  assert.equal(table.solo.lastError.code, 'NYALA_ERR_MODULE_SYNTAX')
  assert.ok(table.solo.lastError.at >= firstAt)

  // a successful reload of another module, or an unchanged check, leaves it in place
  assert.equal((await post('/modules/other/reload?force=true')).body.result, 'reloaded')
  table = await moduleTable(host)
  assert.equal(table.solo.lastError.code, 'NYALA_ERR_MODULE_SYNTAX')
  assert.equal(table.other.lastError, null)
  assert.equal((await get(host, '/solo')).tag, 'b')

  // the next success clears it
  await install(root, 'solo', c)
  const fixed = await post('/modules/solo/reload')
  assert.equal(fixed.status, 200, fixed.text)
  assert.equal(fixed.body.result, 'reloaded')
  const gen = fixed.body.generations.solo
  assert.ok(gen > 3, `a new generation (${gen})`)
  assert.equal((await get(host, '/solo')).tag, 'c')
  table = await moduleTable(host)
  assert.equal(table.solo.lastError, null)
  assert.equal(table.solo.generation, gen)
  await stopOk(host)
})

test('unregister: a changed bundle is not reloaded by the watcher nor by POST /reload; register brings it back', async (t) => {
  const root = await makeRoot(t, watchProps)
  await deploy(root, 'solo')
  await deploy(root, 'other')
  const [b, otherB] = await Promise.all([variant(root, 'solo', 'b'), variant(root, 'other', 'b')])
  const host = await startHost(t, root)
  const post = (p) => admin(host, p, { method: 'POST' })

  const off = await post('/modules/solo/unregister')
  assert.equal(off.status, 200, off.text)
  assert.deepEqual(off.body, { name: 'solo', registered: false })
  assert.equal((await moduleTable(host)).solo.registered, false)

  await install(root, 'solo', b)
  await until(
    () => host.logs().find((r) => r.module === 'solo' && /not reloaded: unregistered/.test(r.msg ?? '')),
    'the watcher to decide about solo',
  )
  // the watcher still works for a registered module
  await install(root, 'other', otherB)
  await until(async () => (await get(host, '/other')).tag === 'b', 'other to reload')
  const solo = await get(host, '/solo')
  assert.equal(solo.generation, 1)
  assert.equal(solo.tag, undefined)

  const rescan = await post('/reload')
  assert.equal(rescan.status, 200, rescan.text)
  assert.equal(rescan.body.result, 'unchanged', 'POST /reload skips an unregistered module')
  assert.equal((await get(host, '/solo')).generation, 1)

  const on = await post('/modules/solo/register')
  assert.equal(on.status, 200, on.text)
  assert.deepEqual(on.body, { name: 'solo', registered: true })
  assert.equal((await moduleTable(host)).solo.registered, true)
  const picked = await post('/reload')
  assert.equal(picked.status, 200, picked.text)
  assert.equal(picked.body.result, 'reloaded')
  assert.deepEqual(picked.body.changed, ['solo'])
  assert.deepEqual(await get(host, '/solo'), { module: 'solo', generation: 2, version: '1.0.0', tag: 'b' })
  await stopOk(host)
})

test('reloadable=false: an explicit reload is 409, forced or not; a changed bundle is not reloaded', async (t) => {
  const root = await makeRoot(t, watchProps)
  await deploy(root, 'fixed', { fields: { reloadable: 'false' } })
  const b = await variant(root, 'fixed', 'b', { fields: { reloadable: 'false' } })
  const host = await startHost(t, root)
  assert.equal((await moduleTable(host)).fixed.reloadable, false)

  for (const p of ['/modules/fixed/reload', '/modules/fixed/reload?force=true']) {
    const res = await admin(host, p, { method: 'POST' })
    assert.equal(res.status, 409, `${p}: ${res.text}`)
    assert.equal(res.body.code, 'NYALA_ERR_NOT_RELOADABLE')
    assert.match(res.body.message, /fixed/)
  }
  await install(root, 'fixed', b)
  await until(
    () => host.logs().find((r) => r.module === 'fixed' && /not reloaded: reloadable=false/.test(r.msg ?? '')),
    'the watcher to decide about fixed',
  )
  const cli = await runCli(['reload', 'fixed', '--root', root])
  assert.equal(cli.code, 1)
  assert.match(cli.stderr, /NYALA_ERR_NOT_RELOADABLE/)
  const status = await runCli(['status', '--root', root])
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /^fixed\s+running\s+1\.0\.0\s+1\s+\/fixed\s+none\s+0\s+0\s+-\s+never\s/m)
  const body = await get(host, '/fixed')
  assert.equal(body.generation, 1)
  assert.equal(body.tag, undefined)
  await stopOk(host)
})

test('GET /metrics counts reloads by result, their durations, and requests by generation', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  const broken = await throwing(root, 'solo')
  const host = await startHost(t, root)
  const post = (p) => admin(host, p, { method: 'POST' })
  await get(host, '/solo')

  assert.equal((await post('/modules/solo/reload')).body.result, 'unchanged')
  assert.equal((await post('/modules/solo/reload?force=true')).body.result, 'reloaded')
  for (let i = 0; i < 3; i++) assert.equal((await get(host, '/solo')).generation, 2)
  await install(root, 'solo', broken)
  assert.equal((await post('/modules/solo/reload')).status, 422)

  const res = await admin(host, '/metrics')
  assert.equal(res.status, 200)
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain/)
  const text = res.text
  const sample = (name) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    assert.ok(line, `${name} in\n${text}`)
    return Number(line.slice(name.length + 1))
  }
  assert.match(text, /^# TYPE nyala_reloads_total counter$/m)
  assert.equal(sample('nyala_reloads_total{result="reloaded"}'), 1)
  assert.equal(sample('nyala_reloads_total{result="unchanged"}'), 1)
  assert.equal(sample('nyala_reloads_total{result="failed"}'), 1)
  assert.match(text, /^# TYPE nyala_reload_duration_seconds histogram$/m)
  assert.equal(sample('nyala_reload_duration_seconds_count'), 1)
  assert.equal(sample('nyala_reload_duration_seconds_bucket{le="+Inf"}'), 1)
  assert.ok(sample('nyala_reload_duration_seconds_sum') > 0)
  const buckets = [...text.matchAll(/^nyala_reload_duration_seconds_bucket\{le="([^"]+)"\} (\d+)$/gm)].map(
    (m) => Number(m[2]),
  )
  assert.ok(buckets.length > 2)
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], 'cumulative buckets')
  assert.equal(sample('nyala_generation_requests_total{module="solo",generation="2"}'), 3)
  assert.doesNotMatch(
    text,
    /nyala_generation_requests_total\{module="solo",generation="1"\}/,
    'generation 1 is gone',
  )
  // the module's own count spans its generations: one request before the reload, three after
  assert.equal(sample('nyala_requests_total{module="solo",status_class="2xx"}'), 4)
  assert.equal(sample('nyala_module_up{module="solo"}'), 1)
  await stopOk(host)
})

test("GET /metrics counts each module's requests by status class with a latency histogram, and Node's own metrics", async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'alpha')
  // beta also fails (500) and never answers one route (the client gives up: aborted)
  await deploy(root, 'beta', {
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
  app.get('/boom', async () => { throw new Error('boom') })
  app.get('/hang', () => new Promise(() => {}))
} }\n`,
    },
  })
  const host = await startHost(t, root)
  const scrape = async () => {
    const res = await admin(host, '/metrics')
    assert.equal(res.status, 200)
    const text = res.text
    return (name) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `))
      assert.ok(line, `${name} in\n${text}`)
      return Number(line.slice(name.length + 1))
    }
  }
  const before = await scrape()
  assert.equal(before('nyala_requests_total{module="alpha",status_class="2xx"}'), 0)
  assert.equal(before('nyala_request_duration_seconds_count{module="alpha"}'), 0)
  assert.equal(before('nyala_reloads_total{result="reloaded"}'), 0)

  for (let i = 0; i < 5; i++) assert.equal((await get(host, '/alpha')).module, 'alpha')
  for (let i = 0; i < 3; i++) assert.equal((await get(host, '/beta')).module, 'beta')
  assert.equal((await request(host.url('/beta/none'))).status, 404, 'answered by the module: 4xx')
  assert.equal((await request(host.url('/beta/boom'))).status, 500)
  // a request the module never answers, given up by its client once the module has it
  const hanging = http.get(host.url('/beta/hang'))
  hanging.on('error', () => {})
  await until(
    async () => (await scrape())('nyala_inflight_requests{module="beta",generation="1"}') === 1,
    'beta in flight',
  )
  hanging.destroy()
  await until(
    async () => (await scrape())('nyala_requests_total{module="beta",status_class="aborted"}') === 1,
    'the aborted request counted',
  )
  assert.equal(
    (await admin(host, '/modules/alpha/reload?force=true', { method: 'POST' })).body.result,
    'reloaded',
  )
  assert.equal((await get(host, '/alpha')).generation, 2)

  const after = await scrape()
  const res = await admin(host, '/metrics')
  assert.match(res.text, /^# TYPE nyala_requests_total counter$/m)
  assert.match(res.text, /^# TYPE nyala_request_duration_seconds histogram$/m)
  assert.equal(after('nyala_requests_total{module="alpha",status_class="2xx"}'), 6)
  assert.equal(after('nyala_requests_total{module="beta",status_class="2xx"}'), 3)
  assert.equal(after('nyala_requests_total{module="beta",status_class="4xx"}'), 1)
  assert.equal(after('nyala_requests_total{module="beta",status_class="5xx"}'), 1)
  assert.equal(after('nyala_requests_total{module="beta",status_class="aborted"}'), 1)
  assert.equal(after('nyala_requests_total{module="alpha",status_class="aborted"}'), 0)
  assert.equal(after('nyala_requests_total{module="alpha",status_class="5xx"}'), 0)
  assert.equal(after('nyala_request_duration_seconds_count{module="alpha"}'), 6)
  assert.equal(after('nyala_request_duration_seconds_count{module="beta"}'), 6)
  assert.equal(after('nyala_request_duration_seconds_bucket{le="+Inf",module="beta"}'), 6)
  assert.ok(after('nyala_request_duration_seconds_sum{module="alpha"}') > 0)
  const buckets = [
    ...res.text.matchAll(/^nyala_request_duration_seconds_bucket\{le="([^"]+)",module="alpha"\} (\d+)$/gm),
  ]
  assert.equal(buckets.length, 20)
  for (let i = 1; i < buckets.length; i++)
    assert.ok(Number(buckets[i][2]) >= Number(buckets[i - 1][2]), 'cumulative')
  assert.equal(after('nyala_reloads_total{result="reloaded"}'), 1)
  assert.equal(after('nyala_reload_duration_seconds_count'), 1)

  // Node's default metrics, prefixed
  assert.ok(after('nyala_process_cpu_user_seconds_total') > 0)
  assert.ok(after('nyala_nodejs_eventloop_lag_seconds') >= 0)
  assert.ok(after('nyala_nodejs_eventloop_lag_p99_seconds') >= 0)
  assert.match(res.text, /^# TYPE nyala_nodejs_gc_duration_seconds histogram$/m)
  assert.ok(after('nyala_process_resident_memory_bytes') > 0)
  await stopOk(host)
})

test('GET /events streams the phases of each reload', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  const broken = await throwing(root, 'solo')
  const host = await startHost(t, root)
  const stream = await openEvents(t, host)
  const post = (p) => admin(host, p, { method: 'POST' })

  const unchanged = (await post('/modules/solo/reload')).body
  await until(() => stream.phases(unchanged.id).includes('unchanged'), 'the unchanged event')
  assert.deepEqual(stream.phases(unchanged.id), ['start', 'unchanged'])

  const reloaded = (await post('/modules/solo/reload?force=true')).body
  assert.equal(reloaded.result, 'reloaded')
  await until(() => stream.phases(reloaded.id).includes('drained'), 'the drained event')
  assert.deepEqual(stream.phases(reloaded.id), ['start', 'started', 'swapped', 'drained'])
  const of = (id, phase) => stream.events.find((e) => e.data?.id === id && e.event === phase).data
  assert.deepEqual(of(reloaded.id, 'start').modules, ['solo'])
  assert.equal(of(reloaded.id, 'start').trigger, 'admin')
  assert.deepEqual(of(reloaded.id, 'swapped').generations, { solo: 2 })
  assert.equal(typeof of(reloaded.id, 'swapped').ms, 'number')

  await install(root, 'solo', broken)
  const failed = (await post('/modules/solo/reload')).body
  assert.equal(failed.result, 'failed')
  await until(() => stream.phases(failed.id).includes('failed'), 'the failed event')
  assert.equal(stream.phases(failed.id)[0], 'start')
  assert.ok(!stream.phases(failed.id).includes('swapped'))
  assert.equal(of(failed.id, 'failed').error.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  stream.close()
  await stopOk(host)
})

test('nyala status and nyala reload: table, --json, exit codes, errors, unreachable admin', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  const original = path.join(modulesOf(root), 'solo.zip')
  const kept = path.join(root, 'src', 'solo-original.zip')
  await copyFile(original, kept)
  const [broken, newbie] = await Promise.all([throwing(root, 'solo'), throwing(root, 'newbie')])
  const host = await startHost(t, root)

  const status = await runCli(['status', '--root', root])
  assert.equal(status.code, 0, status.stderr)
  const lines = status.stdout.trimEnd().split('\n')
  assert.match(
    lines[0],
    /^MODULE\s+STATE\s+VERSION\s+GEN\s+PREFIX\s+ISOLATION\s+INFLIGHT\s+CRASHES\s+SIGNED BY\s+RELOAD\s+LAST RELOAD\s+ERROR$/,
  )
  assert.match(lines[1], /^solo\s+running\s+1\.0\.0\s+1\s+\/solo\s+none\s+0\s+0\s+-\s+yes\s+-\s+-$/)
  assert.equal(lines.length, 2)

  const json = await runCli(['status', '--root', root, '--json'])
  assert.equal(json.code, 0, json.stderr)
  const parsed = JSON.parse(json.stdout)
  assert.deepEqual(
    parsed.modules.map((m) => [m.name, m.state, m.generation]),
    [['solo', 'running', 1]],
  )

  const unchanged = await runCli(['reload', 'solo', '--root', root])
  assert.equal(unchanged.code, 0, unchanged.stderr)
  assert.equal(unchanged.stdout, 'unchanged: nothing to reload\n')
  const forced = await runCli(['reload', 'solo', '--force', '--root', root])
  assert.equal(forced.code, 0, forced.stderr)
  assert.match(forced.stdout, /^reloaded in \d+ ms: solo@2\n$/)
  const rescan = await runCli(['reload', '--root', root])
  assert.equal(rescan.code, 0, rescan.stderr)
  assert.match(rescan.stdout, /^unchanged/)
  const asJson = await runCli(['reload', 'solo', '--force', '--json', '--root', root])
  assert.equal(asJson.code, 0, asJson.stderr)
  assert.equal(JSON.parse(asJson.stdout).result, 'reloaded')
  assert.deepEqual(JSON.parse(asJson.stdout).generations, { solo: 3 })
  assert.equal((await get(host, '/solo')).generation, 3)

  const unknown = await runCli(['reload', 'nope', '--root', root])
  assert.equal(unknown.code, 1)
  assert.match(unknown.stderr, /NYALA_ERR_UNKNOWN_MODULE/)
  assert.match(unknown.stderr, /no module named "nope"; there are: solo/, 'names the modules there are')
  const typo = await runCli(['reload', 'sollo', '--root', root])
  assert.equal(typo.code, 1)
  assert.match(typo.stderr, /no module named "sollo"; did you mean "solo"\?/)
  const unknownJson = await runCli(['reload', 'nope', '--json', '--root', root])
  assert.equal(unknownJson.code, 1)
  const answer = JSON.parse(unknownJson.stdout)
  assert.equal(answer.code, 'NYALA_ERR_UNKNOWN_MODULE', 'the answer as JSON too')
  // the hint is a sentence of its own in JSON, not a fragment of the message with its punctuation
  assert.equal(answer.module, 'nope')
  assert.equal(answer.hint, 'there are: solo')

  // a failed reload: exit 1 with the code; the module still runs, so status is 0 and shows the error
  await install(root, 'solo', broken)
  const failed = await runCli(['reload', 'solo', '--root', root])
  assert.equal(failed.code, 1)
  assert.match(failed.stderr, /NYALA_ERR_MODULE_REGISTER_FAILED/)
  assert.equal(failed.stdout, '')
  const failedJson = await runCli(['reload', 'solo', '--json', '--root', root])
  assert.equal(failedJson.code, 1)
  assert.equal(JSON.parse(failedJson.stdout).result, 'failed')
  const after = await runCli(['status', '--root', root])
  assert.equal(after.code, 0, after.stderr)
  assert.match(after.stdout, /^solo\s+running\s.*NYALA_ERR_MODULE_REGISTER_FAILED: /m)

  // a new module that fails to start: shown as failed, status exits 1
  await copyFile(kept, original)
  await install(root, 'newbie', newbie)
  const added = await runCli(['reload', '--root', root])
  assert.equal(added.code, 1)
  assert.match(added.stderr, /NYALA_ERR_MODULE_REGISTER_FAILED/)
  const down = await runCli(['status', '--root', root])
  assert.equal(down.code, 1)
  assert.match(down.stdout, /^newbie\s+failed\s/m)
  assert.match(down.stdout, /^solo\s+running\s/m)
  assert.equal((await get(host, '/solo')).generation, 3)

  // an admin API nobody answers
  const url = `http://127.0.0.1:${await deadPort()}`
  for (const args of [
    ['status', '--admin', url],
    ['reload', '--admin', url],
    ['reload', 'solo', '--admin', url],
  ]) {
    const res = await runCli(args)
    assert.equal(res.code, 1, args.join(' '))
    assert.match(res.stderr, /NYALA_ERR_ADMIN_UNREACHABLE/, args.join(' '))
  }
  // --admin names the host: a root beside it is a usage error, as for deploy (it was ignored)
  for (const args of [
    ['status', '--admin', url, '--root', root],
    ['reload', '--admin', url, '--config', path.join(root, 'config', 'impala.properties')],
  ]) {
    const res = await runCli(args)
    assert.equal(res.code, 2, args.join(' '))
    assert.match(
      res.stderr,
      /--admin names the host to ask through its admin API: it takes no --root or --config/,
    )
  }
  await stopOk(host)
  // the stopped host removed the URL file it wrote: status says no host serves from the root
  assert.equal(existsSync(path.join(root, 'run', 'admin.url')), false)
  const gone = await runCli(['status', '--root', root])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /NYALA_ERR_ADMIN_UNREACHABLE/)
  assert.match(
    gone.stderr,
    /no host is serving from this root: .*admin\.url, written by a serving host, is absent/,
  )
})

test('SIGHUP rescans and reloads a changed bundle', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'solo')
  await deploy(root, 'other')
  const b = await variant(root, 'solo', 'b')
  const host = await startHost(t, root)
  await install(root, 'solo', b)
  // without auto reload and without a signal, nothing looks at the file
  assert.equal((await get(host, '/solo')).tag, undefined)
  host.child.kill('SIGHUP')
  const now = await until(async () => {
    const body = await get(host, '/solo')
    return body.tag === 'b' && body
  }, 'the SIGHUP rescan')
  assert.equal(now.generation, 2)
  assert.ok(host.logs().some((r) => r.signal === 'SIGHUP'))
  const table = await moduleTable(host)
  assert.equal(table.other.generation, 1, 'an unchanged module is not rebuilt')
  assert.equal(host.child.exitCode, null, 'SIGHUP does not stop the host')
  await stopOk(host)
})

test('blocking mode: requests to the reloading module wait and go to the new generation; others never wait', async (t) => {
  const root = await makeRoot(t, `${baseProps}auto.reload.mode=blocking\nauto.reload.block.timeout=60\n`)
  // shared through globalThis (module code runs in the host's realm): holds the old generation's
  // slow request, and the new generation's register, until the test releases them through `other`
  const latch = `const latch = (globalThis.__nyalaAdminTest ??= (() => {
  const o = {}
  o.slow = new Promise((r) => { o.releaseSlow = r })
  o.start = new Promise((r) => { o.releaseStart = r })
  return o
})())
`
  await deploy(root, 'slow', {
    files: {
      'index.js': `${latch}module.exports = { async register (app, ctx) {
  if (ctx.generation === 2) await latch.start
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
  app.get('/hold', async () => { await latch.slow; return { module: ctx.name, generation: ctx.generation, held: true } })
} }
`,
    },
  })
  await deploy(root, 'other', {
    files: {
      'index.js': `${latch}module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
  app.post('/release/slow', async () => { latch.releaseSlow(); return { released: 'slow' } })
  app.post('/release/start', async () => { latch.releaseStart(); return { released: 'start' } })
} }
`,
    },
  })
  const host = await startHost(t, root)
  const stream = await openEvents(t, host)
  const getSlow = (p) => tracked(request(host.url(p)))

  // a slow request in flight on generation 1
  const held = getSlow('/slow/hold')
  await until(async () => (await moduleTable(host)).slow.inflight === 1, 'the slow request to be in flight')

  const reload = tracked(admin(host, '/modules/slow/reload?force=true', { method: 'POST' }))
  const start = await until(() => stream.events.find((e) => e.event === 'start'), 'the start event')
  const id = start.data.id
  // the gate is up: a new request waits while the old generation drains
  const early = getSlow('/slow')
  const otherEarly = await request(host.url('/other'))
  assert.equal(otherEarly.status, 200, 'another module answers while slow drains')
  assert.equal(held.settled, false)
  assert.equal(early.settled, false, 'the new request waits at the gate')
  assert.equal(reload.settled, false)

  await request(host.url('/other/release/slow'), { method: 'POST' })
  const heldRes = await held.promise
  assert.equal(heldRes.status, 200)
  assert.deepEqual(heldRes.body, { module: 'slow', generation: 1, held: true }, 'finished on its own code')

  // drained; the new generation is starting (held in its register): still gated
  await until(() => stream.phases(id).includes('blocked'), 'the blocked event')
  const late = getSlow('/slow')
  const otherLate = await request(host.url('/other'))
  assert.equal(otherLate.status, 200, 'another module answers while slow starts')
  assert.equal(early.settled, false)
  assert.equal(late.settled, false)
  assert.equal(reload.settled, false)

  await request(host.url('/other/release/start'), { method: 'POST' })
  const reloadRes = await reload.promise
  assert.equal(reloadRes.status, 200, reloadRes.text)
  assert.deepEqual(reloadRes.body.generations, { slow: 2 })
  for (const r of [early, late]) {
    const res = await r.promise
    assert.equal(res.status, 200)
    assert.deepEqual(
      res.body,
      { module: 'slow', generation: 2 },
      'waited for and served by the new generation',
    )
  }
  await until(() => stream.phases(id).includes('drained'), 'the drained event')
  assert.deepEqual(stream.phases(id), ['start', 'blocked', 'started', 'swapped', 'drained'])
  stream.close()
  await stopOk(host)
})

test('blocking mode: a wait past auto.reload.block.timeout is a 503 with Retry-After; a failed reload releases the waiting requests to the old generation', async (t) => {
  const root = await makeRoot(t, `${baseProps}auto.reload.mode=blocking\nauto.reload.block.timeout=3\n`)
  const latch = `const latch = (globalThis.__nyalaAdminTest ??= (() => {
  const o = {}
  o.slow = new Promise((r) => { o.releaseSlow = r })
  o.start = new Promise((r) => { o.releaseStart = r })
  return o
})())
`
  await deploy(root, 'slow', {
    files: {
      'index.js': `${latch}module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
  app.get('/hold', async () => { await latch.slow; return { module: ctx.name, generation: ctx.generation, held: true } })
} }
`,
    },
  })
  await deploy(root, 'other', {
    files: {
      'index.js': `${latch}module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
  app.post('/release/slow', async () => { latch.releaseSlow(); return { released: 'slow' } })
  app.post('/release/start', async () => { latch.releaseStart(); return { released: 'start' } })
} }
`,
    },
  })
  // the new slow: its register waits for the test, then throws
  const refused = await variant(root, 'slow', 'refused', {
    files: {
      'index.js': `${latch}module.exports = { async register () { await latch.start; throw new Error('refused by the test') } }\n`,
    },
  })
  const host = await startHost(t, root)
  const stream = await openEvents(t, host)
  const getSlow = (p) => tracked(request(host.url(p)))

  const held = getSlow('/slow/hold')
  await until(async () => (await moduleTable(host)).slow.inflight === 1, 'the slow request to be in flight')
  await install(root, 'slow', refused)
  const reload = tracked(admin(host, '/modules/slow/reload', { method: 'POST' }))
  const start = await until(() => stream.events.find((e) => e.event === 'start'), 'the start event')
  const id = start.data.id

  // the old generation cannot drain (held): a new request gives up after the block timeout
  const timedOut = await getSlow('/slow').promise
  assert.equal(timedOut.status, 503, timedOut.text)
  assert.equal(timedOut.body.code, 'NYALA_ERR_REQUEST_BLOCKED_TIMEOUT')
  assert.equal(timedOut.headers.get('retry-after'), '1')
  assert.equal(held.settled, false)
  assert.equal(reload.settled, false)
  assert.equal((await request(host.url('/other'))).status, 200)

  await request(host.url('/other/release/slow'), { method: 'POST' })
  assert.deepEqual((await held.promise).body, { module: 'slow', generation: 1, held: true })
  await until(() => stream.phases(id).includes('blocked'), 'the blocked event')
  const waiting = getSlow('/slow')
  assert.equal((await request(host.url('/other'))).status, 200)
  assert.equal(waiting.settled, false, 'gated while the new generation starts')

  await request(host.url('/other/release/start'), { method: 'POST' })
  const res = await reload.promise
  assert.equal(res.status, 422, res.text)
  assert.equal(res.body.error.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  const released = await waiting.promise
  assert.equal(released.status, 200, released.text)
  assert.deepEqual(released.body, { module: 'slow', generation: 1 }, 'the old generation serves on')
  assert.deepEqual(await get(host, '/slow'), { module: 'slow', generation: 1 })
  assert.ok(!stream.phases(id).includes('swapped'))
  assert.equal(stream.phases(id).at(-1), 'failed')
  stream.close()
  await stopOk(host)
})

test('a module that failed at start-up comes up, with its dependent, when its fixed bundle is reloaded', async (t) => {
  const root = await makeRoot(t, baseProps)
  await deploy(root, 'bad', {
    files: { 'index.js': `module.exports = { async register () { throw new Error('boom at start') } }\n` },
  })
  await deploy(root, 'dep', { fields: { 'depends-on': 'bad' } })
  const fixed = await variant(root, 'bad', 'fixed')
  const host = await startHost(t, root)
  let table = await moduleTable(host)
  assert.equal(table.bad.state, 'failed')
  assert.equal(table.dep.state, 'failed')
  assert.equal(table.dep.error.code, 'NYALA_ERR_DEPENDENCY_FAILED')
  assert.equal((await request(host.url('/dep'))).status, 503)
  const before = await runCli(['status', '--root', root])
  assert.equal(before.code, 1, 'a module is not running')
  assert.match(before.stdout, /^bad\s+failed\s/m)

  // forcing the same broken bundle fails again and changes nothing
  const again = await admin(host, '/modules/bad/reload?force=true', { method: 'POST' })
  assert.equal(again.status, 422, again.text)
  assert.equal(again.body.error.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  assert.equal((await moduleTable(host)).bad.state, 'failed')

  await install(root, 'bad', fixed)
  const res = await admin(host, '/modules/bad/reload', { method: 'POST' })
  assert.equal(res.status, 200, res.text)
  assert.equal(res.body.result, 'reloaded')
  assert.deepEqual(res.body.affected, ['bad', 'dep'])
  table = await moduleTable(host)
  assert.equal(table.bad.state, 'running')
  assert.equal(table.bad.error, null)
  assert.equal(table.bad.lastError, null)
  assert.equal(table.dep.state, 'running')
  assert.equal((await get(host, '/bad')).tag, 'fixed')
  assert.equal((await request(host.url('/dep'))).status, 200)
  const after = await runCli(['status', '--root', root])
  assert.equal(after.code, 0, after.stdout)
  await stopOk(host)
})
