// Signals of a running instance: SIGTERM drains, SIGINT is bounded by shutdown.fast.timeout,
// SIGQUIT hands over by hand (the design's three commands) while a slow request finishes on
// the old process. Every process a test starts is killed in t.after if still running.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  agentGet,
  daemonLogs,
  deploy,
  isAlive,
  killAfter,
  makeRoot,
  pidModuleFiles,
  request,
  runCli,
  startDaemon,
  startHost,
  waitUntil,
} from './helpers.js'

const slowFiles = {
  'index.js': `module.exports = {
  async register (app, ctx) {
    app.get('/wait', async (req) => {
      ctx.log.info({ ms: Number(req.query.ms) }, 'slow request begun')
      if (req.query.until) {
        // released by the test creating the file, not by a timer: no test depends on timing
        while (!require('fs').existsSync(req.query.until)) await new Promise((resolve) => setTimeout(resolve, 20))
      } else await new Promise((resolve) => setTimeout(resolve, Number(req.query.ms)))
      return { done: true, pid: process.pid }
    })
  },
  async stop (ctx) {
    if (ctx.config.hang === 'true') await new Promise(() => {})
  },
}\n`,
}

/** A GET on its own connection; resolves { status, body } or { error }. */
function getOnce(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
      res.on('error', (err) => resolve({ error: err.message }))
    })
    req.on('error', (err) => resolve({ error: err.message }))
  })
}

test('SIGTERM lets an in-flight slow request finish, then exits and removes its pidfile', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=30\n')
  await deploy(root, 'slow', { files: slowFiles })
  const host = await startDaemon(t, root)
  const pending = getOnce(host.url('/slow/wait?ms=1500'))
  await waitUntil(
    async () => (await daemonLogs(root)).some((r) => r.msg === 'slow request begun'),
    'the slow request to begin',
  )
  process.kill(host.pid, 'SIGTERM')
  const res = await pending
  assert.equal(res.status, 200, res.error)
  assert.deepEqual(res.body, { done: true, pid: host.pid })
  await waitUntil(() => !isAlive(host.pid), 'the instance to exit')
  const logs = (await daemonLogs(root)).filter((r) => r.pid === host.pid)
  assert.ok(logs.some((r) => r.signal === 'SIGTERM'))
  assert.equal(logs.at(-1).msg, 'stopped')
  assert.equal(existsSync(path.join(root, 'run', 'nyala.pid')), false)
})

test('SIGINT does not wait past shutdown.fast.timeout for a slow request or a hanging stop', async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nshutdown.fast.timeout=1\nmodule.stop.timeout=300\nshutdown.grace.period=300\n',
  )
  await deploy(root, 'slow', { files: slowFiles })
  await writeFile(path.join(root, 'config', 'slow.properties'), 'hang=true\n')
  const host = await startHost(t, root)
  const pending = getOnce(host.url('/slow/wait?ms=300000'))
  await waitUntil(() => host.logs().some((r) => r.msg === 'slow request begun'), 'the slow request to begin')
  const exited = host.stop('SIGINT')
  let bound
  const outcome = await Promise.race([
    exited,
    new Promise((resolve) => {
      bound = setTimeout(resolve, 60_000, 'still running')
    }),
  ])
  clearTimeout(bound)
  assert.notEqual(outcome, 'still running', 'SIGINT waited for the request or the stop hook')
  assert.equal(outcome.code, 1, 'work was cut short: exit code 1')
  const res = await pending
  assert.ok(res.error, 'the slow request was cut, not answered')
  assert.ok(
    host.logs().some((r) => r.msg === 'shutdown.fast.timeout passed: exiting now' && r.timeout === 1000),
  )
})

test('SIGQUIT by hand: the old instance finishes its slow request while the successor serves', async (t) => {
  // the design's three commands, with relative --pidfile and --upgrade-socket (relative to the root)
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=30\n')
  await deploy(root, 'slow', { files: slowFiles })
  await deploy(root, 'who', { files: pidModuleFiles })
  const flags = ['--pidfile', 'state/n.pid', '--upgrade-socket', 'state/u.sock']
  const pidfile = path.join(root, 'state', 'n.pid')
  const old = await startDaemon(t, root, flags)
  assert.equal(Number(await readFile(pidfile, 'utf8')), old.pid)

  const waiting = await runCli(['start', '--root', root, '--upgrade', '--daemonize', ...flags], {
    cwd: root,
    timeoutMs: 90_000,
  })
  const successor = Number(/pid (\d+) waiting for the handover on (\S+)/.exec(waiting.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  assert.equal(waiting.code, 0, waiting.stderr)
  assert.match(
    waiting.stdout,
    new RegExp(`waiting for the handover on ${path.join(root, 'state', 'u.sock')}`),
  )
  assert.equal(
    Number(await readFile(pidfile, 'utf8')),
    old.pid,
    'the waiting successor has not taken the pidfile',
  )

  const release = path.join(root, 'release')
  const slow = getOnce(old.url(`/slow/wait?until=${encodeURIComponent(release)}`))
  await waitUntil(
    async () => (await daemonLogs(root)).some((r) => r.msg === 'slow request begun'),
    'the slow request to begin',
  )
  process.kill(Number(await readFile(pidfile, 'utf8')), 'SIGQUIT')
  await waitUntil(
    async () => Number(await readFile(pidfile, 'utf8')) === successor,
    'the pidfile to name the successor',
  )
  const fresh = await request(old.url('/who/'), { headers: { connection: 'close' } })
  assert.equal(fresh.body.pid, successor, 'new connections go to the successor')
  assert.ok(isAlive(old.pid), 'the old instance is still draining')
  await writeFile(release, '')
  const res = await slow
  assert.equal(res.status, 200, res.error)
  assert.deepEqual(res.body, { done: true, pid: old.pid }, 'the slow request finished on the old instance')
  await waitUntil(() => !isAlive(old.pid), 'the old instance to exit')
  assert.equal(Number(await readFile(pidfile, 'utf8')), successor, 'the old instance left the pidfile alone')

  // SIGQUIT to the successor now finds nobody waiting: it keeps serving
  process.kill(successor, 'SIGQUIT')
  await waitUntil(
    async () =>
      (await daemonLogs(root)).some(
        (r) => r.pid === successor && r.code === 'NYALA_ERR_UPGRADE_NO_SUCCESSOR',
      ),
    'the no-successor record',
  )
  assert.equal((await request(old.url('/who/'), { headers: { connection: 'close' } })).body.pid, successor)
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), 'the successor to exit')
})

// A module whose generations after the first wait in register until the file `hold` names
// exists (after creating `<hold>.held`): a reload the test holds open as long as it needs.
const heldFiles = {
  'index.js': `const fs = require('fs')
module.exports = {
  async register (app, ctx) {
    if (ctx.generation > 1) {
      fs.writeFileSync(ctx.config.hold + '.held', '')
      while (!fs.existsSync(ctx.config.hold)) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    app.get('/', async () => ({ pid: process.pid, generation: ctx.generation }))
  },
}\n`,
}

/** A root serving `held`, with the file that releases its held reload; the reload not started. */
async function heldRoot(t, more = '') {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nshutdown.grace.period=60\n${more}`)
  const hold = path.join(root, 'release')
  await deploy(root, 'held', { files: heldFiles })
  await writeFile(path.join(root, 'config', 'held.properties'), `hold=${hold}\n`)
  return { root, hold }
}

/**
 * Starts a forced reload of `held` through the admin API and waits until it is held in
 * register; `answer` is the admin API's answer, once the reload ends (wrapped: an async
 * function's returned promise would be awaited with it).
 */
async function holdReload(adminUrl, hold) {
  const answer = request(`${adminUrl}/modules/held/reload?force=true`, { method: 'POST' }).catch((err) => ({
    error: err.message,
  }))
  await waitUntil(() => existsSync(`${hold}.held`), 'the reload to be held in register')
  return { answer }
}

for (const workers of [1, 2]) {
  test(`SIGTERM during a reload (workers=${workers}): new connections are refused at once and kept-alive requests are told to close`, async (t) => {
    const { root, hold } = await heldRoot(t, `workers=${workers}\n`)
    const host = await startHost(t, root)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    t.after(() => agent.destroy())
    const first = await agentGet(agent, host.url('/held/'))
    assert.equal(first.body?.generation, 1, first.error)
    if (workers === 1) assert.equal(first.body.pid, host.child.pid)
    assert.equal(first.connection, 'keep-alive')
    const reload = await holdReload(host.admin(''), hold)

    host.child.kill('SIGTERM')
    await waitUntil(() => host.logs().some((r) => r.signal === 'SIGTERM'), 'the SIGTERM record')
    // the reload is still held: the stop did not wait for it to refuse new connections and
    // to tell kept-alive clients (a worker's too) to leave
    const kept = await agentGet(agent, host.url('/held/'))
    assert.equal(kept.status, 200, kept.error)
    assert.deepEqual(kept.body, first.body, 'the same process, on the same connection')
    assert.equal(
      kept.connection,
      'close',
      'a request on a kept-alive connection is answered with Connection: close',
    )
    const fresh = await agentGet(false, host.url('/held/'))
    assert.equal(fresh.error?.code, 'ECONNREFUSED', 'a new connection is refused while the reload is held')
    assert.equal(existsSync(hold), false, 'the reload was still held')

    await writeFile(hold, '')
    // a second SIGTERM would mean "exit now": wait for the first one's drain instead
    await waitUntil(() => host.child.exitCode !== null, 'the instance to exit')
    const exit = await host.stop()
    assert.equal(exit.code, 0, host.stderr())
    assert.equal((await reload.answer).status, 200, 'the held reload finished before the exit')
    assert.ok(host.logs().some((r) => r.pid === host.child.pid && r.msg === 'stopped'))
  })
}

test('nyala upgrade during a reload: kept-alive clients move to the successor without waiting for the reload', async (t) => {
  // the last CI failure of "nyala upgrade under load", made deterministic: the old instance
  // told its kept-alive clients to leave only after its reloads had ended
  const { root, hold } = await heldRoot(t)
  const old = await startDaemon(t, root)
  const admin = (await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim()
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  assert.deepEqual((await agentGet(agent, old.url('/held/'))).body, { pid: old.pid, generation: 1 })
  const reload = await holdReload(admin, hold)

  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 90_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)
  // the old instance may have closed the idle connection already (after its idle grace), or
  // answer once more with Connection: close; either way the next request is the successor's
  const next = await agentGet(agent, old.url('/held/'))
  assert.equal(next.status, 200, next.error)
  if (next.body.pid === old.pid) {
    assert.equal(next.connection, 'close', 'the old instance tells a kept-alive client to leave')
    const after = await agentGet(agent, old.url('/held/'))
    assert.equal(after.status, 200, after.error)
    assert.deepEqual(after.body, { pid: successor, generation: 1 })
  } else assert.deepEqual(next.body, { pid: successor, generation: 1 })
  assert.ok(isAlive(old.pid), 'the old instance still holds its reload')
  assert.equal(existsSync(hold), false)

  await writeFile(hold, '')
  assert.equal((await reload.answer).status, 200, 'the held reload finished on the old instance')
  await waitUntil(() => !isAlive(old.pid), 'the old instance to exit')
  assert.deepEqual((await agentGet(agent, old.url('/held/'))).body, { pid: successor, generation: 1 })
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), 'the successor to exit')
})
