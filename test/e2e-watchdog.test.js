// A stuck event loop is seen: the watchdog thread logs NYALA_ERR_EVENT_LOOP_STALL on the host's
// stdout, naming the module and route (or ctx timer) that hold the loop, while it is stuck; then
// one line when the loop turns again. watchdog.action=exit ends the process with exit code 3
// after the line; watchdog.stall.ms=0 turns it off; a bad value stops start-up with its code.
// The busy loops that must hold until the test has read the stall line wait for a file the test
// writes (bounded at 30 s), so nothing here depends on how fast a loaded machine is.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { deploy, makeRoot, request, runCli, startHost, waitUntil } from './helpers.js'

const busyIndex = `const fs = require('node:fs')
const path = require('node:path')
// busy until the test writes the file (or 30 s): a stall that lasts exactly as long as the test needs
function spinUntil (name) {
  const file = path.join(process.cwd(), name)
  const end = Date.now() + 30000
  while (!fs.existsSync(file) && Date.now() < end) {}
}
function spinFor (ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {}
}
module.exports = {
  async register (app, ctx) {
    // a hook runs while Fastify routes the request, before the handler
    app.addHook('onRequest', (req, reply, done) => {
      if (req.url.endsWith('/hooked')) spinUntil('release-hook')
      done()
    })
    app.get('/', async () => ({ module: ctx.name }))
    app.get('/hooked', async () => ({ hooked: true }))
    app.get('/spin', async () => {
      spinUntil('release-spin')
      return { spun: true }
    })
    app.get('/spin3s', (req, reply) => {
      spinFor(3000)
      reply.send({ spun: true })
    })
    app.get('/timer', async () => {
      ctx.setTimeout(() => spinUntil('release-timer'), 1)
      return { scheduled: true }
    })
    app.get('/later', async () => {
      await new Promise((resolve) => setTimeout(resolve, 5))
      spinUntil('release-later')
      return { spun: true }
    })
  },
}
`

async function busyRoot(t, properties) {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nlog.format=json\n${properties}`)
  await deploy(root, 'other')
  await deploy(root, 'busy', { files: { 'index.js': busyIndex } })
  return root
}

const stalls = (host) => host.logs().filter((r) => r.code === 'NYALA_ERR_EVENT_LOOP_STALL')
const recoveries = (host) => host.logs().filter((r) => typeof r.stalledMs === 'number')

// found by what they name, not by position: a loaded machine may stall the start-up too
const stallOf = (host, what, match) =>
  waitUntil(() => stalls(host).find(match), `a stall record of ${what} on stdout:\n${host.stdout()}`, 30_000)
const recoveryOf = (host, what, match) =>
  waitUntil(() => recoveries(host).find(match), `a recovery record of ${what}:\n${host.stdout()}`, 30_000)
const ofSpin = (r) => r.route === 'GET /busy/spin'
const ofTimer = (r) => r.within === 'timer'
const ofLater = (r) => r.lastRoute === 'GET /busy/later'
const ofHook = (r) => r.within === 'request'

test('a route that holds the loop is logged with its module and route while stuck, then its recovery', async (t) => {
  const root = await busyRoot(t, 'watchdog.stall.ms=500\n')
  const host = await startHost(t, root)
  assert.equal((await request(host.url('/other/'))).status, 200)

  // a route handler
  const answer = request(host.url('/busy/spin'))
  const stall = await stallOf(host, 'the route', ofSpin)
  assert.equal(stall.level, 50)
  assert.equal(stall.pid, host.child.pid)
  assert.equal(stall.module, 'busy')
  assert.equal(stall.generation, 1)
  assert.equal(stall.route, 'GET /busy/spin')
  assert.equal(stall.within, 'route')
  assert.equal(stall.action, 'log')
  assert.equal(stall.limit, 500)
  assert.ok(stall.ms >= 500, `ms ${stall.ms}`)
  assert.match(stall.msg, /module "busy" generation 1 is running route GET \/busy\/spin/)
  assert.deepEqual(recoveries(host).filter(ofSpin), [], 'no recovery while it is still stuck')
  await writeFile(path.join(root, 'release-spin'), '')
  assert.deepEqual((await answer).body, { spun: true })
  const recovered = await recoveryOf(host, 'the route', ofSpin)
  assert.equal(recovered.level, 40)
  assert.equal(recovered.module, 'busy')
  assert.equal(recovered.route, 'GET /busy/spin')
  assert.ok(recovered.stalledMs >= 500, `stalledMs ${recovered.stalledMs}`)
  assert.match(recovered.msg, /turned again after about \d+ ms/)
  assert.equal(stalls(host).filter(ofSpin).length, 1, 'one stall record per stall')
  assert.equal((await request(host.url('/other/'))).status, 200, 'serving again')

  // a ctx timer of the module, no request running
  assert.equal((await request(host.url('/busy/timer'))).status, 200)
  const timer = await stallOf(host, 'the timer', ofTimer)
  assert.equal(timer.module, 'busy')
  assert.equal(timer.within, 'timer')
  assert.equal(timer.route, undefined)
  assert.match(timer.msg, /module "busy" generation 1 is running a ctx timer/)
  await writeFile(path.join(root, 'release-timer'), '')
  await recoveryOf(host, 'the timer', ofTimer)

  // a hook of the module, before the route handler: the module is known, the route not yet
  const hooked = request(host.url('/busy/hooked'))
  const hook = await stallOf(host, 'the hook', ofHook)
  assert.equal(hook.module, 'busy')
  assert.equal(hook.route, undefined)
  assert.match(hook.msg, /module "busy" generation 1 is running a request, before its route handler/)
  await writeFile(path.join(root, 'release-hook'), '')
  assert.deepEqual((await hooked).body, { hooked: true })
  await recoveryOf(host, 'the hook', ofHook)

  // module code resumed after an await: not marked, so not named as running; the last request is
  const later = request(host.url('/busy/later'))
  const unmarked = await stallOf(host, 'the resumed handler', ofLater)
  assert.equal(unmarked.module, undefined)
  assert.equal(unmarked.within, 'unknown')
  assert.equal(unmarked.lastModule, 'busy')
  assert.equal(unmarked.lastRoute, 'GET /busy/later')
  await writeFile(path.join(root, 'release-later'), '')
  assert.equal((await later).status, 200)
  await recoveryOf(host, 'the resumed handler', ofLater)

  const { code } = await host.stop()
  assert.equal(code, 0)
})

test('a 3-second busy loop with watchdog.action=exit: the stall is logged, then the host exits with code 3', async (t) => {
  const root = await busyRoot(t, 'watchdog.stall.ms=1500\nwatchdog.action=exit\n')
  const host = await startHost(t, root)
  // the connection is cut when the process ends
  const answer = request(host.url('/busy/spin3s')).catch((err) => ({ error: err }))
  // SIGCONT changes nothing for a running process: this only waits for the exit
  const { code, signal } = await host.stop('SIGCONT')
  assert.deepEqual({ code, signal }, { code: 3, signal: null }, host.stdout() + host.stderr())
  const [stall, ...more] = stalls(host).filter((r) => r.route === 'GET /busy/spin3s')
  assert.ok(stall, `a stall record before the exit:\n${host.stdout()}`)
  assert.equal(more.length, 0)
  assert.equal(stall.level, 60)
  assert.equal(stall.module, 'busy')
  assert.equal(stall.route, 'GET /busy/spin3s')
  assert.equal(stall.action, 'exit')
  assert.match(stall.msg, /exiting with code 3/)
  assert.ok(host.stdout().endsWith('\n'), 'the line was written whole')
  assert.ok('error' in (await answer), 'the stuck request got no answer')
})

test('watchdog.stall.ms=0 turns the watchdog off', async (t) => {
  const root = await busyRoot(t, 'watchdog.stall.ms=0\n')
  const host = await startHost(t, root)
  // 3 s stuck: the default 2000 ms would have logged it
  assert.equal((await request(host.url('/busy/spin3s'))).status, 200)
  assert.equal((await request(host.url('/other/'))).status, 200)
  assert.deepEqual(stalls(host), [])
  assert.equal((await host.stop()).code, 0)
})

test('a bad watchdog value stops start-up with NYALA_ERR_CONFIG_VALUE naming the key', async (t) => {
  for (const [line, key] of [
    ['watchdog.stall.ms=10', 'watchdog.stall.ms'],
    ['watchdog.action=restart', 'watchdog.action'],
  ]) {
    const root = await makeRoot(t, `port=0\nhost=127.0.0.1\n${line}\n`)
    const { code, stderr } = await runCli(['start', '--root', root])
    assert.equal(code, 1, stderr)
    assert.match(stderr, /NYALA_ERR_CONFIG_VALUE/)
    assert.ok(stderr.includes(`"${key}"`), stderr)
  }
})
