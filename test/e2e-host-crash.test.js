// An error no module can be found in (a string thrown from a plain setTimeout: no stack, no
// module frame) is the host's own. With host.crash.action=upgrade (the default) the crashed
// process starts a successor with --upgrade, hands it the listeners, drains and exits 0:
// under keep-alive load no connection is refused. When no successor can take over (it cannot
// load its configuration, it is not ready within host.crash.upgrade.timeout) the process
// exits 1 with the reason; a chain of crashing successors ends after host.crash.max.upgrades.
// Real CLI, real processes, real sockets on 127.0.0.1. The successors are detached processes
// started by the host under test: each test kills every pid its log names in t.after.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { deploy, isAlive, keepAliveLoad, makeRoot, request, startHost, waitUntil } from './helpers.js'

const pidIndex = `module.exports = { async register (app) {
  app.get('/', async () => ({ pid: process.pid }))
} }
`

// the crash routes: what a setTimeout throws as a string has no stack, so no module frame
const crashIndex = `const fs = require('node:fs')
module.exports = { async register (app) {
  // a slow start, only where the test asks for it (a successor that misses its deadline)
  if (fs.existsSync('slow-start')) await new Promise((resolve) => setTimeout(resolve, 8000))
  app.get('/', async () => ({ pid: process.pid }))
  app.get('/throw-string', async () => {
    setTimeout(() => { throw 'a string, no stack' }, 1)
    return { pid: process.pid }
  })
  // a second host error while the first one's replacement runs
  app.get('/throw-twice', async () => {
    setTimeout(() => { throw 'first host error' }, 1)
    setTimeout(() => { throw 'second host error' }, 200)
    return { pid: process.pid }
  })
} }
`

const pidfileOf = (root) => path.join(root, 'run', 'nyala.pid')
const readPidfile = async (root) => Number((await readFile(pidfileOf(root), 'utf8').catch(() => '')).trim())

async function setUp(t, settings = '') {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nshutdown.grace.period=3\n${settings}`)
  await deploy(root, 'alpha', { files: { 'index.js': pidIndex } })
  await deploy(root, 'beta', { files: { 'index.js': pidIndex } })
  await deploy(root, 'crash', { files: { 'index.js': crashIndex } })
  const host = await startHost(t, root)
  // successors write into the host's stdout (inherited): every pid there is a process of this test
  t.after(() => {
    for (const pid of new Set(host.logs().map((r) => r.pid))) {
      if (pid !== host.child.pid && isAlive(pid)) process.kill(pid, 'SIGKILL')
    }
  })
  return { root, host }
}

/** Waits for the old process's exit, then returns its exit code (0 included). */
async function exitCode(host, what, timeoutMs = 90_000) {
  await waitUntil(() => host.child.exitCode !== null || host.child.signalCode !== null, what, timeoutMs)
  return host.child.exitCode
}

test('a host crash under keep-alive load: a successor takes the listeners, no connection is refused, the old pid exits 0, the pidfile names the new pid', {
  timeout: 180_000,
}, async (t) => {
  const { root, host } = await setUp(t)
  const old = host.child.pid
  // written right after the listening record startHost waits for
  await waitUntil(async () => (await readPidfile(root)) === old, 'the pidfile to name the host', 30_000)
  const urls = ['/alpha/', '/beta/', '/crash/'].map((p) => host.url(p))
  // one keep-alive connection per module, until every one has moved and 10 requests more
  const load = keepAliveLoad(
    t,
    urls.map((url) => [url]),
    { tail: 10 },
  )
  const laneOf = (results, lane) => results.filter((r) => r.lane === lane)
  await waitUntil(
    () => urls.every((_, lane) => laneOf(load.results, lane).length >= 20),
    'the load on the old process',
    30_000,
  )

  const triggered = await request(host.url('/crash/throw-twice'), { headers: { connection: 'close' } })
  assert.equal(triggered.status, 200)
  assert.equal(triggered.body.pid, old)
  const code = await exitCode(host, `the crashed pid ${old} to exit`)
  const successor = await readPidfile(root)
  // the successor answers on the same address, for every module and the admin API
  await waitUntil(
    () => urls.every((_, lane) => laneOf(load.results, lane).at(-1)?.body?.pid === successor),
    'every load connection on the successor',
    30_000,
  )
  await load.stop()
  const results = urls.map((_, lane) => laneOf(load.results, lane))

  assert.equal(code, 0, `the replaced process exits 0 (stderr: ${host.stderr()})`)
  assert.notEqual(successor, old)
  assert.ok(isAlive(successor), 'the successor serves')
  for (const p of ['/alpha/', '/beta/', '/crash/']) {
    const res = await request(host.url(p), { headers: { connection: 'close' } })
    assert.deepEqual([res.status, res.body.pid], [200, successor], p)
  }
  assert.equal(
    (await request(host.admin('/health'), { headers: { connection: 'close' } })).body.pid,
    successor,
  )
  for (const [i, list] of results.entries()) {
    const failures = list.filter((r) => r.status !== 200)
    assert.deepEqual(failures, [], `${urls[i]}: every request is a 200, none refused or reset`)
    const pids = list.map((r) => r.body.pid)
    assert.equal(pids[0], old, `${urls[i]}: starts on the old process`)
    assert.equal(pids.at(-1), successor, `${urls[i]}: ends on the successor`)
    assert.equal(
      pids.filter((pid, n) => n > 0 && pid !== pids[n - 1]).length,
      1,
      `${urls[i]}: moves once (${pids.join(' ')})`,
    )
  }

  const logs = host.logs()
  const crashes = logs.filter((r) => r.code === 'NYALA_ERR_HOST_CRASHED')
  assert.deepEqual(
    crashes.map((r) => [r.pid, r.level, r.origin, r.action, r.stack]),
    [
      [old, 60, 'uncaughtException', 'upgrade', 'first host error'],
      // the second error is logged, and starts no second successor
      [old, 50, 'uncaughtException', 'none', 'second host error'],
    ],
  )
  const started = logs.filter((r) => /^host crash: successor pid \d+ loaded/.test(r.msg ?? ''))
  assert.deepEqual(
    started.map((r) => r.successor),
    [successor],
  )
  assert.deepEqual(
    [...new Set(logs.map((r) => r.pid))].sort(),
    [old, successor].sort(),
    'two processes: the crashed one and one successor',
  )
  assert.ok(logs.some((r) => r.pid === successor && r.msg === `took over the listeners of pid ${old}`))
  assert.ok(logs.some((r) => r.pid === old && r.msg === 'stopped'))

  // the successor is a full instance: SIGTERM stops it and removes the pidfile that names it
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), `successor ${successor} to stop`, 30_000)
  assert.equal(existsSync(pidfileOf(root)), false)
})

test('a host crash whose successor cannot load its configuration: the process exits 1 with the reason, no successor stays', {
  timeout: 120_000,
}, async (t) => {
  const { root, host } = await setUp(t)
  const old = host.child.pid
  // changed on disk after the start: the successor reads it afresh
  const config = path.join(root, 'config', 'impala.properties')
  await writeFile(config, `${await readFile(config, 'utf8')}module.start.timeout=soon\n`)
  assert.equal((await request(host.url('/crash/throw-string'))).status, 200)
  assert.equal(await exitCode(host, 'the exit'), 1)

  const failure = host.logs().find((r) => r.code === 'NYALA_ERR_HOST_CRASH_REPLACE')
  assert.equal(failure?.pid, old)
  assert.match(failure.msg, /could not be replaced: the successor did not start/)
  assert.match(failure.msg, /NYALA_ERR_CONFIG_VALUE/)
  assert.match(failure.msg, /module\.start\.timeout/)
  assert.match(host.stderr(), /nyala: NYALA_ERR_HOST_CRASH_REPLACE: /)
  const successor = Number(/the daemonized process \(pid (\d+)\)/.exec(failure.msg)?.[1])
  assert.ok(successor > 0 && successor !== old, 'a successor was tried')
  // it reports its failure just before it exits
  await waitUntil(() => !isAlive(successor), 'the failed successor to be gone', 10_000)
  assert.equal(existsSync(pidfileOf(root)), false, 'the pidfile named the crashed process: removed')
})

test('a host crash whose successor is not ready within host.crash.upgrade.timeout: the successor is killed, the process exits 1', {
  timeout: 120_000,
}, async (t) => {
  const { root, host } = await setUp(t, 'host.crash.upgrade.timeout=1\n')
  await writeFile(path.join(root, 'slow-start'), '')
  assert.equal((await request(host.url('/crash/throw-string'))).status, 200)
  assert.equal(await exitCode(host, 'the exit'), 1)
  const failure = host.logs().find((r) => r.code === 'NYALA_ERR_HOST_CRASH_REPLACE')
  assert.match(failure?.msg ?? '', /was not ready within 1000 ms \(killed\)/)
  const successor = Number(/the daemonized process \(pid (\d+)\)/.exec(failure.msg)?.[1])
  assert.ok(successor > 0, 'a successor was started')
  await waitUntil(() => !isAlive(successor), 'the successor to be gone', 10_000)
})

test('a successor that crashes too: the chain ends after host.crash.max.upgrades with NYALA_ERR_HOST_CRASH_LOOP, exit 1', {
  timeout: 180_000,
}, async (t) => {
  const { root, host } = await setUp(t, 'host.crash.max.upgrades=1\n')
  const old = host.child.pid
  assert.equal(
    (await request(host.url('/crash/throw-string'), { headers: { connection: 'close' } })).status,
    200,
  )
  assert.equal(await exitCode(host, 'the first process to be replaced'), 0)
  const successor = await readPidfile(root)
  assert.notEqual(successor, old)
  const res = await request(host.url('/crash/throw-string'), { headers: { connection: 'close' } })
  assert.equal(res.body.pid, successor)
  await waitUntil(() => !isAlive(successor), `successor ${successor} to exit`, 30_000)

  const loop = host.logs().find((r) => r.code === 'NYALA_ERR_HOST_CRASH_LOOP')
  assert.equal(loop?.pid, successor)
  assert.deepEqual([loop.upgrades, loop.max], [1, 1])
  const crash = host.logs().find((r) => r.code === 'NYALA_ERR_HOST_CRASHED' && r.pid === successor)
  assert.deepEqual([crash.action, crash.why], ['exit', 'host.crash.max.upgrades reached'])
  assert.match(host.stderr(), /nyala: NYALA_ERR_HOST_CRASH_LOOP: /)
  assert.equal([...new Set(host.logs().map((r) => r.pid))].length, 2, 'no third process')
  assert.equal(existsSync(pidfileOf(root)), false)
})
