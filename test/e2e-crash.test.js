// A module whose code crashes (a stray rejected promise, a throw in setTimeout, a throw in
// ctx.setTimeout, an 'error' event nobody listens to) never takes the host down: the supervisor
// restarts it within module.crash.max.restarts, then fails it with NYALA_ERR_MODULE_CRASH_LOOP,
// while the other modules answer every request. Also the fail and log policies, a crash of an
// old generation draining after a reload, and an error no module owns with host.crash.action=exit
// (the process exits). Real CLI, real sockets on 127.0.0.1; the load is bounded in count and time.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  agentGet,
  deploy,
  keepAliveLoad,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  request,
  startHost,
  waitUntil,
} from './helpers.js'

const crashIndex = `const { EventEmitter } = require('node:events')
module.exports = {
  async register (app, ctx) {
    app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
    app.get('/reject', async () => {
      Promise.reject(new Error('stray rejection'))
      return { generation: ctx.generation }
    })
    app.get('/timeout', async () => {
      setTimeout(() => { throw new Error('thrown in setTimeout') }, 1)
      return { generation: ctx.generation }
    })
    app.get('/ctx-timeout', async () => {
      ctx.setTimeout(() => { throw new Error('thrown in ctx.setTimeout') }, 1)
      return { generation: ctx.generation }
    })
    app.get('/emit', async () => {
      const emitter = new EventEmitter()
      setImmediate(() => emitter.emit('error', new Error('error event without a listener')))
      return { generation: ctx.generation }
    })
    // an in-flight request that keeps this generation draining after a reload, until /fire
    // (answered by whichever generation runs then) makes this one's ctx timer throw
    app.get('/hold', async () => {
      await new Promise((resolve) => {
        const poll = ctx.setInterval(() => {
          if (!globalThis.nyalaCrashTestFire) return
          globalThis.nyalaCrashTestFire = false
          ctx.clearInterval(poll)
          resolve()
          throw new Error('old generation crashed while draining')
        }, 20)
      })
      return { generation: ctx.generation }
    })
    app.get('/fire', async () => {
      globalThis.nyalaCrashTestFire = true
      return { generation: ctx.generation }
    })
    // a plain timer that outlives the generation: it throws once the file fire-late appears
    app.get('/late', async () => {
      const poll = setInterval(() => {
        if (!require('node:fs').existsSync('fire-late')) return
        clearInterval(poll)
        throw new Error('leftover timer of a removed module')
      }, 20)
      return { generation: ctx.generation }
    })
    app.get('/throw-string', async () => {
      setTimeout(() => { throw 'a string, no stack' }, 1)
      return { generation: ctx.generation }
    })
    ctx.provide({ generation: ctx.generation })
  },
}
`

// uses crash: rebuilt with it, failed with it
const userIndex = `module.exports = { async register (app, ctx) {
  const crash = ctx.use('crash')
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation, crashGeneration: crash.generation }))
} }
`

async function setUp(t, settings) {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nshutdown.grace.period=2\n${settings}`)
  await deploy(root, 'alpha')
  await deploy(root, 'beta')
  await deploy(root, 'crash', { files: { 'index.js': crashIndex } })
  await deploy(root, 'user', { fields: { 'depends-on': 'crash' }, files: { 'index.js': userIndex } })
  const host = await startHost(t, root)
  const events = await openEvents(t, host.admin('/events'))
  return { root, host, events }
}

/** The admin API's event stream, parsed as it arrives; closed by t.after. */
async function openEvents(t, url) {
  const events = []
  const req = http.get(url)
  t.after(() => req.destroy())
  await new Promise((resolve, reject) => {
    req.on('response', (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        buffer += d
        let cut = buffer.indexOf('\n\n')
        while (cut !== -1) {
          const data = /^data: (.*)$/m.exec(buffer.slice(0, cut))
          if (data) events.push(JSON.parse(data[1]))
          buffer = buffer.slice(cut + 2)
          cut = buffer.indexOf('\n\n')
        }
      })
      res.on('error', () => {})
      resolve()
    })
    req.on('error', reject)
  })
  return events
}

/**
 * Keep-alive load on the healthy modules: 2 connections, each alternating between the
 * paths, a few ms apart, at most `max` requests each; `stop()` ends it and resolves the results.
 */
const startLoad = (t, urls) => keepAliveLoad(t, [urls, [...urls.slice(1), urls[0]]])

const crashRecords = (host) => host.logs().filter((r) => r.code === 'NYALA_ERR_MODULE_CRASHED')
const moduleInfo = async (host, name) => (await request(host.admin(`/modules/${name}`))).body
const stoppedLine = (host, gen) =>
  host.logs().some((r) => r.module === 'crash' && r.generation === gen && /stopped$/.test(r.msg ?? ''))

test('four kinds of crash under load: restarted each time, then NYALA_ERR_MODULE_CRASH_LOOP; the other modules never notice', {
  timeout: 120_000,
}, async (t) => {
  const { host, events } = await setUp(t, 'module.crash.max.restarts=4\nmodule.crash.window=600\n')
  const load = startLoad(t, [host.url('/alpha/'), host.url('/beta/')])
  const ways = ['reject', 'timeout', 'ctx-timeout', 'emit']
  // the healthy modules are loaded before and after every crash: progress, not time, decides
  const loadFor = async (requests) => {
    const mark = load.results.length + requests
    await waitUntil(() => load.results.length >= mark, `${requests} more requests of the load`, 30_000)
  }
  for (const [i, way] of ways.entries()) {
    const gen = i + 1
    await loadFor(60)
    const triggered = await request(host.url(`/crash/${way}`))
    assert.equal(triggered.status, 200, `${way}: ${triggered.text}`)
    assert.equal(triggered.body.generation, gen)
    // restarted: the next generation answers, and the dependent was rebuilt against it
    await waitUntil(
      async () => (await request(host.url('/crash/'))).body.generation === gen + 1,
      `generation ${gen + 1} of crash after "${way}"`,
      30_000,
    )
    const user = await request(host.url('/user/'))
    assert.equal(user.status, 200)
    assert.equal(user.body.crashGeneration, gen + 1)
    // the crashed generation has drained and stopped before the next crash
    await waitUntil(() => stoppedLine(host, gen), `generation ${gen} of crash stopped`, 30_000)
  }
  // one crash more than module.crash.max.restarts within the window
  await loadFor(60)
  assert.equal((await request(host.url('/crash/reject'))).status, 200)
  await waitUntil(
    async () => (await moduleInfo(host, 'crash')).state === 'failed',
    'crash failed after the 5th crash',
    30_000,
  )
  await loadFor(60)
  const results = await load.stop()

  const crash = await moduleInfo(host, 'crash')
  assert.equal(crash.error.code, 'NYALA_ERR_MODULE_CRASH_LOOP')
  assert.equal(crash.crashes, 5)
  const unavailable = await request(host.url('/crash/'))
  assert.equal(unavailable.status, 503)
  assert.equal(unavailable.body.code, 'NYALA_ERR_MODULE_UNAVAILABLE')
  const user = await moduleInfo(host, 'user')
  assert.equal(user.state, 'failed')
  assert.equal(user.error.code, 'NYALA_ERR_DEPENDENCY_FAILED')
  assert.equal((await request(host.url('/user/'))).status, 503)

  // every request to the healthy modules was answered 200, by their first generation
  assert.ok(results.length >= 360, `only ${results.length} requests were made`)
  const bad = results.filter((r) => r.error || r.status !== 200 || r.body.generation !== 1)
  assert.deepEqual(bad.slice(0, 3), [], `${bad.length} of ${results.length} failed`)
  for (const name of ['alpha', 'beta']) {
    const info = await moduleInfo(host, name)
    assert.equal(info.state, 'running')
    assert.equal(info.generation, 1)
    assert.equal(info.crashes, 0)
  }

  // one record per crash, with its module, generation, stack and origin
  const records = crashRecords(host)
  assert.equal(records.length, 5)
  assert.deepEqual(
    records.map((r) => [r.module, r.generation, r.origin, r.action]),
    [
      ['crash', 1, 'unhandledRejection', 'restart'],
      ['crash', 2, 'uncaughtException', 'restart'],
      ['crash', 3, 'uncaughtException', 'restart'],
      ['crash', 4, 'uncaughtException', 'restart'],
      ['crash', 5, 'unhandledRejection', 'fail'],
    ],
  )
  const messages = [
    'stray rejection',
    'thrown in setTimeout',
    'thrown in ctx.setTimeout',
    'error event without a listener',
  ]
  for (const [i, message] of [...messages, 'stray rejection'].entries()) {
    assert.match(records[i].stack, new RegExp(`^Error: ${message}`))
    assert.match(records[i].stack, /crash\.zip\/index\.js:\d+/)
    assert.equal(records[i].level, 50)
    assert.equal(records[i].crashes, i + 1)
  }
  assert.equal(records[2].attributedBy, 'timer')
  const loop = host.logs().find((r) => r.code === 'NYALA_ERR_MODULE_CRASH_LOOP')
  assert.equal(loop.module, 'crash')
  assert.equal(loop.max, 4)

  // the metric and the events
  const metrics = (await request(host.admin('/metrics'))).text
  assert.match(metrics, /^nyala_module_crashes_total\{module="crash"\} 5$/m)
  assert.match(metrics, /^nyala_module_crashes_total\{module="alpha"\} 0$/m)
  const crashed = events.filter((e) => e.phase === 'crashed')
  assert.deepEqual(
    crashed.map((e) => [e.module, e.generations.crash, e.action, e.error.code]),
    [1, 2, 3, 4, 5].map((g) => ['crash', g, g === 5 ? 'fail' : 'restart', 'NYALA_ERR_MODULE_CRASHED']),
  )
  assert.equal(events.filter((e) => e.phase === 'swapped' && e.trigger === 'crash').length, 4)

  // still one process, still serving; a forced reload brings the module back with a fresh count
  const reload = await request(host.admin('/modules/crash/reload?force=true'), { method: 'POST' })
  assert.equal(reload.status, 200, reload.text)
  assert.equal((await request(host.url('/crash/'))).status, 200)
  assert.equal(host.child.exitCode, null)
})

test('module.crash.policy=fail: the crashed module and its dependents fail, the rest serve; an old generation draining after a reload crashes without failing the new one', {
  timeout: 90_000,
}, async (t) => {
  const { host, events } = await setUp(t, 'module.crash.policy=fail\n')
  // generation 1 holds a request in flight, a reload swaps in generation 2, then generation 1's
  // ctx timer throws while it drains
  const agent = new http.Agent({ keepAlive: false })
  t.after(() => agent.destroy())
  const held = agentGet(agent, host.url('/crash/hold'))
  await waitUntil(async () => (await moduleInfo(host, 'crash')).inflight === 1, 'the held request', 30_000)
  const reload = await request(host.admin('/modules/crash/reload?force=true'), { method: 'POST' })
  assert.equal(reload.status, 200, reload.text)
  assert.equal((await request(host.url('/crash/fire'))).body.generation, 2)
  const answer = await held
  assert.equal(answer.status, 200)
  assert.equal(answer.body.generation, 1)
  await waitUntil(() => crashRecords(host).length === 1, 'the old generation crash record', 30_000)
  const old = crashRecords(host)[0]
  assert.deepEqual([old.generation, old.action, old.attributedBy], [1, 'none', 'timer'])
  let crash = await moduleInfo(host, 'crash')
  assert.deepEqual([crash.state, crash.generation, crash.crashes], ['running', 2, 1])

  // a crash of the running generation fails it, and its dependent with it
  assert.equal((await request(host.url('/crash/timeout'))).status, 200)
  await waitUntil(async () => (await moduleInfo(host, 'crash')).state === 'failed', 'crash failed', 30_000)
  crash = await moduleInfo(host, 'crash')
  assert.equal(crash.error.code, 'NYALA_ERR_MODULE_CRASHED')
  assert.equal(crash.crashes, 2)
  assert.equal((await request(host.url('/crash/'))).status, 503)
  const user = await moduleInfo(host, 'user')
  assert.deepEqual([user.state, user.error.code], ['failed', 'NYALA_ERR_DEPENDENCY_FAILED'])
  for (const name of ['alpha', 'beta']) assert.equal((await request(host.url(`/${name}/`))).status, 200)
  assert.deepEqual(
    events.filter((e) => e.phase === 'crashed').map((e) => [e.generations.crash, e.action]),
    [
      [1, 'none'],
      [2, 'fail'],
    ],
  )
})

test('module.crash.policy=log: every kind of crash is logged and counted, the module keeps serving', {
  timeout: 60_000,
}, async (t) => {
  const { host } = await setUp(t, 'module.crash.policy=log\n')
  const ways = ['reject', 'timeout', 'ctx-timeout', 'emit']
  for (const way of ways) assert.equal((await request(host.url(`/crash/${way}`))).status, 200)
  await waitUntil(() => crashRecords(host).length === ways.length, 'four crash records', 30_000)
  assert.deepEqual(
    crashRecords(host).map((r) => [r.generation, r.action, r.policy]),
    ways.map(() => [1, 'log', 'log']),
  )
  const crash = await moduleInfo(host, 'crash')
  assert.deepEqual([crash.state, crash.generation, crash.crashes], ['running', 1, 4])
  assert.equal((await request(host.url('/crash/'))).body.generation, 1)
  assert.equal(host.child.exitCode, null)
})

test('a leftover timer of a removed module crashes: logged and counted against nothing, the host serves on', {
  timeout: 60_000,
}, async (t) => {
  const { root, host } = await setUp(t, '')
  assert.equal((await request(host.url('/crash/late'))).status, 200)
  await rm(path.join(root, 'modules', 'user.zip'))
  await rm(path.join(root, 'modules', 'crash.zip'))
  const rescan = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(rescan.status, 200, rescan.text)
  assert.equal((await request(host.url('/crash/'))).status, 404)
  await writeFile(path.join(root, 'fire-late'), '')
  await waitUntil(() => crashRecords(host).length === 1, 'the crash record of the removed module', 30_000)
  const record = crashRecords(host)[0]
  assert.deepEqual(
    [record.module, record.generation, record.action, record.attributedBy],
    ['crash', 1, 'none', 'stack'],
  )
  assert.equal((await request(host.url('/alpha/'))).status, 200)
  assert.equal(host.child.exitCode, null)
})

// the default, host.crash.action=upgrade (a successor takes over), is in e2e-host-crash.test.js
test('host.crash.action=exit: an error no module can be found in (a thrown string) ends the process: logged with NYALA_ERR_HOST_CRASHED, exit code 1', {
  timeout: 60_000,
}, async (t) => {
  const { host } = await setUp(t, 'host.crash.action=exit\n')
  assert.equal((await request(host.url('/crash/throw-string'))).status, 200)
  const exit = await waitUntil(
    () => host.child.exitCode !== null && { code: host.child.exitCode },
    'the exit',
    30_000,
  )
  assert.equal(exit.code, 1)
  const fatal = host.logs().filter((r) => r.level === 60)
  assert.equal(fatal.length, 1, 'logged once')
  assert.deepEqual(
    [fatal[0].code, fatal[0].origin, fatal[0].action, fatal[0].why, fatal[0].stack],
    ['NYALA_ERR_HOST_CRASHED', 'uncaughtException', 'exit', 'host.crash.action=exit', 'a string, no stack'],
  )
  assert.match(fatal[0].msg, /outside any module/)
  assert.match(host.stderr(), /nyala: uncaughtException: a string, no stack/)
  assert.equal(crashRecords(host).length, 0)
  // no successor was started: every record is the one process's
  assert.deepEqual([...new Set(host.logs().map((r) => r.pid))], [host.child.pid])
})

test("a crash of module code while it starts is the module's, not the host's: a stray rejection in register, a timer left by a register that fails", {
  timeout: 60_000,
}, async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=2\n')
  await deploy(root, 'alpha')
  // register leaves a rejected promise nobody handles, and starts as usual
  await deploy(root, 'stray', {
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  Promise.reject(new Error('stray rejection in register'))
  await new Promise((resolve) => setTimeout(resolve, 50))
  app.get('/', async () => ({ module: ctx.name, generation: ctx.generation }))
} }
`,
    },
  })
  // register sets a plain timer, then fails; the timer fires after the start has failed
  await deploy(root, 'late', {
    files: {
      'index.js': `module.exports = { async register () {
  setTimeout(() => { throw new Error('timer of a failed start') }, 300)
  throw new Error('bad')
} }
`,
    },
  })
  const host = await startHost(t, root)
  await waitUntil(() => crashRecords(host).length === 2, 'a crash record for each', 30_000)
  const records = crashRecords(host)
    .map((r) => [r.module, r.generation, r.action])
    .sort()
  assert.deepEqual(records, [
    ['late', 1, 'none'],
    ['stray', 1, 'none'],
  ])
  assert.equal((await request(host.url('/stray/'))).status, 200, 'the module started')
  assert.equal((await moduleInfo(host, 'late')).error?.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  assert.equal((await request(host.url('/alpha/'))).status, 200)
  assert.equal(host.child.exitCode, null, 'the host serves on')
  assert.equal(
    host.logs().filter((r) => r.code === 'NYALA_ERR_HOST_CRASHED').length,
    0,
    'no crash of the host itself',
  )
})

test('a crash restart that waited for a deploy of the same module does not put the old code back', {
  timeout: 60_000,
}, async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nshutdown.grace.period=2\nauto.reload.modules=true\nauto.reload.monitoring.type=tmpfile\nauto.reload.settle.ms=50\n',
  )
  const hold = path.join(root, 'release')
  await writeFile(path.join(root, 'config', 'm.properties'), `hold=${hold}\n`)
  // 1.0.0 crashes on request, outside the request (a plain timer)
  await deploy(root, 'm', {
    fields: { version: '1.0.0' },
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ version: ctx.version, generation: ctx.generation }))
  app.get('/boom', async () => { setTimeout(() => { throw new Error('boom in 1.0.0') }, 1); return 'ok' })
} }
`,
    },
  })
  const host = await startHost(t, root)
  const events = await openEvents(t, host.admin('/events'))
  // 2.0.0 holds its register until the test says: the deploy holds the module's lock meanwhile
  const v2 = await moduleSource(root, 'm-v2', {
    fields: { name: 'm', version: '2.0.0' },
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  const fs = require('fs')
  fs.writeFileSync(ctx.config.hold + '.held', '')
  while (!fs.existsSync(ctx.config.hold)) await new Promise((resolve) => setTimeout(resolve, 20))
  app.get('/', async () => ({ version: ctx.version, generation: ctx.generation }))
} }
`,
    },
  })
  await packWithNyala(v2, path.join(modulesOf(root), 'm.zip.tmp'))
  await waitUntil(() => existsSync(`${hold}.held`), 'the deploy of 2.0.0 to be held in register', 30_000)
  // 1.0.0, still the running generation, crashes: its restart waits for the deploy's lock
  assert.equal((await request(host.url('/m/boom'))).status, 200)
  await waitUntil(() => crashRecords(host).length === 1, 'the crash record', 30_000)
  assert.equal(crashRecords(host)[0].action, 'restart')
  await writeFile(hold, '')
  // the restart's own end, after the deploy's swap: unchanged (its generation was replaced), or,
  // as before, a swap back to 1.0.0
  await waitUntil(
    () => events.some((e) => e.trigger === 'crash' && ['swapped', 'unchanged', 'failed'].includes(e.phase)),
    'the crash restart to end',
    30_000,
  )
  const served = (await request(host.url('/m/'))).body
  assert.equal(served.version, '2.0.0', `after the crash restart: ${JSON.stringify(served)}`)
  const ends = events.filter(
    (e) => e.trigger === 'crash' && ['swapped', 'unchanged', 'failed'].includes(e.phase),
  )
  assert.deepEqual(
    ends.map((e) => e.phase),
    ['unchanged'],
  )
  assert.equal(host.child.exitCode, null)
})

test("a dependency's reload rebuilds a crash-looping module but keeps its restart count: redeploying the dependency does not keep it under the limit", {
  timeout: 90_000,
}, async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nshutdown.grace.period=2\nmodule.crash.max.restarts=2\nmodule.crash.window=600\n',
  )
  await deploy(root, 'dep')
  await deploy(root, 'crash', { fields: { 'depends-on': 'dep' }, files: { 'index.js': crashIndex } })
  const host = await startHost(t, root)
  const events = await openEvents(t, host.admin('/events'))
  const generation = async () => (await moduleInfo(host, 'crash')).generation
  let restarts = 0
  const crashAndWait = async (n) => {
    assert.equal((await request(host.url('/crash/timeout'))).status, 200)
    await waitUntil(() => crashRecords(host).length === n, `crash ${n} to be logged`, 30_000)
    const action = crashRecords(host)[n - 1].action
    if (action === 'restart') {
      restarts++
      await waitUntil(
        () => events.filter((e) => e.trigger === 'crash' && e.phase === 'swapped').length === restarts,
        `restart ${restarts} (crash ${n}) to swap`,
        30_000,
      )
    }
    return action
  }
  const reloadDep = async () => {
    const before = await generation()
    const res = await request(host.admin('/modules/dep/reload?force=true'), { method: 'POST' })
    assert.equal(res.status, 200, JSON.stringify(res.body))
    assert.deepEqual(res.body.affected, ['dep', 'crash'])
    // the dependent was rebuilt with its dependency
    assert.equal(await generation(), before + 1)
  }
  assert.equal(await crashAndWait(1), 'restart')
  await reloadDep()
  assert.equal(await crashAndWait(2), 'restart')
  await reloadDep()
  // the third crash within the window: over module.crash.max.restarts=2 whatever dep did
  assert.equal(await crashAndWait(3), 'fail')
  await waitUntil(
    async () => (await moduleInfo(host, 'crash')).state === 'failed',
    'crash to be failed',
    30_000,
  )
  const info = await moduleInfo(host, 'crash')
  assert.equal(info.error.code, 'NYALA_ERR_MODULE_CRASH_LOOP')
  const swapped = events.filter((e) => e.phase === 'swapped' && e.trigger !== 'crash')
  assert.deepEqual(
    swapped.map((e) => e.changed),
    [['dep'], ['dep']],
  )
  // a reload of the module itself starts it again with a fresh count
  const res = await request(host.admin('/modules/crash/reload?force=true'), { method: 'POST' })
  assert.equal(res.status, 200, JSON.stringify(res.body))
  assert.equal((await moduleInfo(host, 'crash')).state, 'running')
  assert.equal(await crashAndWait(4), 'restart')
  assert.equal(host.child.exitCode, null)
})
