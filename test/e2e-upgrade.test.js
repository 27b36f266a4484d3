// Hot process upgrade against the real CLI: daemonized instances, `nyala upgrade`, signals
// and pidfiles. Every process a test starts is killed in t.after if it is still running.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  daemonLogs,
  deploy,
  isAlive,
  killAfter,
  makeRoot,
  pidModuleFiles,
  request,
  runCli,
  startDaemon,
  waitUntil,
} from './helpers.js'

const config = 'port=0\nhost=127.0.0.1\nshutdown.grace.period=10\n'
const pidfileOf = (root) => path.join(root, 'run', 'nyala.pid')
const socketOf = (root) => path.join(root, 'run', 'upgrade.sock')
const readPidfile = async (root) => Number((await readFile(pidfileOf(root), 'utf8')).trim())

/** One GET with its own agent choice; resolves { status, pid } or { error }. */
function get(url, agent) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode, pid: JSON.parse(text).pid })
        } catch {
          resolve({ status: res.statusCode, error: `not JSON: ${text.slice(0, 100)}` })
        }
      })
      res.on('error', (err) => resolve({ error: err.message }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', (err) => resolve({ error: `${err.code ?? ''} ${err.message}` }))
  })
}

/**
 * Sequential requests until `stop()` is true and `tail` more have been made. Bounded by time,
 * not by count: a count runs out early on a fast machine while the upgrade is still under way
 * (5000 keep-alive requests took about 3 s on CI, the upgrade longer), and the loop then
 * "ended on the old instance". `agent` false: a new connection per request; an Agent:
 * keep-alive. Resolves a summary: the pids as runs ({ pid, n }), the failures (at most 10),
 * the count, and whether the tail ended it.
 */
async function clientLoop(url, agent, stop, { tail = 20, ms = 120_000 } = {}) {
  const runs = []
  const failures = []
  let count = 0
  let after = 0
  const deadline = Date.now() + ms
  while (after < tail && Date.now() < deadline) {
    const r = await get(url, agent)
    count++
    if (r.status !== 200 && failures.length < 10) failures.push(r)
    if (runs.at(-1)?.pid === r.pid) runs.at(-1).n++
    else runs.push({ pid: r.pid, n: 1 })
    if (stop()) after++
  }
  return { runs, failures, count, byTail: after >= tail }
}

test('nyala upgrade under load: every request gets 200 and the pid changes once', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'who', { files: pidModuleFiles })
  const old = await startDaemon(t, root)
  assert.equal(await readPidfile(root), old.pid, 'the pidfile names the daemon once it serves')
  const admin = (await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim()
  const health = async () => (await request(`${admin}/health`, { headers: { connection: 'close' } })).body.pid
  assert.equal(await health(), old.pid)

  let upgraded = false
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => keepAlive.destroy())
  const loops = [
    clientLoop(old.url('/who/'), keepAlive, () => upgraded),
    // new connections back to back: the successor accepts only once the old process has
    // stopped ("released"), so even these see the old process, then the new one, never both
    clientLoop(old.url('/who/'), false, () => upgraded),
  ]
  // let both loops run against the old instance first
  await new Promise((resolve) => setTimeout(resolve, 300))
  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 90_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  upgraded = true
  const [alive, fresh] = await Promise.all(loops)
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)
  assert.match(res.stdout, new RegExp(`upgraded: pid ${successor} serves, pid ${old.pid} is draining`))
  assert.notEqual(successor, old.pid)
  assert.equal(await readPidfile(root), successor)
  // every listener moved, the admin API's too, on the same address
  assert.equal(await health(), successor)
  assert.equal((await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim(), admin)

  for (const [name, loop] of [
    ['keep-alive', alive],
    ['new connections', fresh],
  ]) {
    const runs = loop.runs.map((r) => `${r.pid} x${r.n}`).join(', ')
    assert.ok(loop.byTail, `${name}: ended by its tail after the upgrade, not by its time bound (${runs})`)
    assert.deepEqual(loop.failures, [], `${name}: every request gets 200`)
    assert.deepEqual(
      loop.runs.map((r) => r.pid),
      [old.pid, successor],
      `${name}: the old instance, then the successor, once (${loop.count} requests: ${runs})`,
    )
  }

  await waitUntil(() => !isAlive(old.pid), `old pid ${old.pid} to exit after draining`)
  assert.equal(existsSync(socketOf(root)), false, 'the upgrade socket is removed after the handover')
  assert.equal(
    (await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim(),
    admin,
    'the old instance leaves the admin URL file to the successor, which wrote the same URL',
  )
  const logs = await daemonLogs(root)
  assert.ok(
    logs.some(
      (r) => r.pid === old.pid && r.msg === `handed over to pid ${successor}: draining (grace 10000 ms)`,
    ),
  )
  assert.ok(logs.some((r) => r.pid === successor && r.msg === `took over the listeners of pid ${old.pid}`))
  assert.deepEqual(
    logs.filter((r) => r.level >= 40 && r.pid === successor).map((r) => r.msg),
    [],
    'the successor waited for "released", no bound passed',
  )
  assert.ok(logs.some((r) => r.pid === old.pid && r.msg === 'stopped'))

  // the successor is a full instance: it can be upgraded again, and stopped with SIGTERM
  const again = await runCli(['upgrade', '--root', root, '--watch'], { cwd: root, timeoutMs: 90_000 })
  const third = Number(/successor pid (\d+)/.exec(again.stdout)?.[1] ?? 0)
  if (third) killAfter(t, third)
  assert.equal(again.code, 0, `${again.stdout}\n${again.stderr}`)
  assert.equal((await request(old.url('/who/'), { headers: { connection: 'close' } })).body.pid, third)
  const watching = (await daemonLogs(root)).filter((r) => r.monitoringType !== undefined).map((r) => r.pid)
  assert.deepEqual(watching, [third], 'only the instance upgraded with --watch watches the modules')
  process.kill(third, 'SIGTERM')
  await waitUntil(() => !isAlive(third) && !isAlive(successor), 'both instances to exit')
  assert.equal(existsSync(pidfileOf(root)), false, 'SIGTERM removes the pidfile that names it')
  assert.equal(existsSync(path.join(root, 'run', 'admin.url')), false, 'and the admin URL file it wrote')
})

test('SIGQUIT with no successor: the instance logs it and keeps serving', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'who', { files: pidModuleFiles })
  const host = await startDaemon(t, root)
  process.kill(host.pid, 'SIGQUIT')
  const record = await waitUntil(
    async () => (await daemonLogs(root)).find((r) => r.code === 'NYALA_ERR_UPGRADE_NO_SUCCESSOR'),
    'the no-successor record',
  )
  assert.equal(record.pid, host.pid)
  assert.equal(record.socket, socketOf(root))
  assert.match(record.msg, new RegExp(`no successor answered on the upgrade socket ${socketOf(root)}`))
  const res = await request(host.url('/who/'), { headers: { connection: 'close' } })
  assert.equal(res.status, 200)
  assert.equal(res.body.pid, host.pid)
  assert.ok(isAlive(host.pid))
  assert.equal(await readPidfile(root), host.pid)
  process.kill(host.pid, 'SIGTERM')
  await waitUntil(() => !isAlive(host.pid), 'the instance to stop')
})

test('a successor whose module fails never takes the sockets; nyala upgrade names the module', async (t) => {
  const root = await makeRoot(t, config)
  const flag = path.join(root, 'fail-now')
  await deploy(root, 'who', { files: pidModuleFiles })
  await deploy(root, 'flaky', {
    files: {
      'index.js': `module.exports = { async register (app) {
  if (require('fs').existsSync(${JSON.stringify(flag)})) throw new Error('flaky was told to fail')
  app.get('/', async () => ({ pid: process.pid }))
} }\n`,
    },
  })
  const old = await startDaemon(t, root)
  await writeFile(flag, '')
  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 90_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  assert.equal(res.code, 1, `${res.stdout}\n${res.stderr}`)
  assert.match(res.stderr, /NYALA_ERR_UPGRADE_FAILED/)
  assert.match(res.stderr, /NYALA_ERR_UPGRADE_MODULE_FAILED: module "flaky" serves in the running instance/)
  assert.match(res.stderr, /flaky was told to fail/)
  assert.match(res.stderr, new RegExp(`pid ${old.pid} still serves`))

  assert.ok(successor > 0, res.stdout)
  await waitUntil(() => !isAlive(successor), 'the successor to exit')
  assert.ok(isAlive(old.pid))
  assert.equal(await readPidfile(root), old.pid)
  assert.equal(existsSync(socketOf(root)), false, 'the failed successor removed its upgrade socket')
  for (const p of ['/who/', '/flaky/']) {
    const r = await request(old.url(p), { headers: { connection: 'close' } })
    assert.equal(r.status, 200, p)
    assert.equal(r.body.pid, old.pid, p)
  }
  const logs = await daemonLogs(root)
  const refused = logs.find((r) => r.code === 'NYALA_ERR_UPGRADE_REFUSED')
  assert.equal(refused?.pid, old.pid, 'the old instance logs the refusal')
  assert.equal(refused.successor, successor)
  const fatal = logs.find((r) => r.code === 'NYALA_ERR_UPGRADE_MODULE_FAILED')
  assert.equal(fatal?.pid, successor)
  assert.equal(fatal.module, 'flaky')
  assert.equal(fatal.oldPid, old.pid)
  assert.ok(
    !logs.some((r) => r.pid === successor && /^listening/.test(r.msg)),
    'the successor never listened',
  )
  process.kill(old.pid, 'SIGTERM')
  await waitUntil(() => !isAlive(old.pid), 'the instance to stop')
})

test('a live pidfile refuses a second start; a stale one is replaced with a warning naming the dead pid', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'who', { files: pidModuleFiles })
  // a pid that surely exited: a process of ours that has finished
  const dead = await new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
    child.on('exit', () => resolve(child.pid))
  })
  await mkdir(path.join(root, 'run'))
  await writeFile(pidfileOf(root), `${dead}\n`)
  const first = await startDaemon(t, root)
  const logs = await daemonLogs(root)
  const stale = logs.find((r) => r.code === 'NYALA_ERR_PIDFILE_STALE')
  assert.equal(stale?.deadPid, dead, 'the warning names the dead pid')
  assert.equal(stale.pid, first.pid)
  assert.equal(stale.file, pidfileOf(root))
  assert.equal(await readPidfile(root), first.pid)

  const second = await runCli(['start', '--root', root], { cwd: root })
  assert.equal(second.code, 1)
  assert.match(
    second.stderr,
    new RegExp(`NYALA_ERR_PIDFILE_LIVE: pidfile ${pidfileOf(root)} names pid ${first.pid}, which is running`),
  )
  const refusal = JSON.parse(second.stdout.split('\n').find((l) => l.includes('NYALA_ERR_PIDFILE_LIVE')))
  assert.equal(refusal.livePid, first.pid)
  assert.equal(refusal.file, pidfileOf(root))
  // refused before loading anything: no module started, no port taken
  assert.doesNotMatch(second.stdout, /module who .* started/)

  const daemonized = await runCli(['start', '--root', root, '--daemonize'], { cwd: root })
  assert.equal(daemonized.code, 1)
  assert.match(daemonized.stderr, /NYALA_ERR_DAEMONIZE: .*NYALA_ERR_PIDFILE_LIVE/)
  assert.equal(await readPidfile(root), first.pid, 'the refused starts left the pidfile alone')
  assert.equal((await request(first.url('/who/'), { headers: { connection: 'close' } })).body.pid, first.pid)
  process.kill(first.pid, 'SIGTERM')
  await waitUntil(() => !isAlive(first.pid), 'the instance to stop')
  assert.equal(existsSync(pidfileOf(root)), false)

  // a pid reused by something that is not Nyala (here: this test process) counts as stale:
  // nyala upgrade never sends it SIGQUIT, and start replaces the pidfile
  await writeFile(pidfileOf(root), `${process.pid}\n`)
  const upgrade = await runCli(['upgrade', '--root', root], { cwd: root })
  assert.equal(upgrade.code, 1)
  assert.match(
    upgrade.stderr,
    new RegExp(`NYALA_ERR_NOT_RUNNING: .*names pid ${process.pid}, which is not a running Nyala`),
  )
  const next = await startDaemon(t, root)
  const replaced = (await daemonLogs(root)).find(
    (r) => r.pid === next.pid && r.code === 'NYALA_ERR_PIDFILE_STALE',
  )
  assert.equal(replaced?.deadPid, process.pid)
  process.kill(next.pid, 'SIGTERM')
  await waitUntil(() => !isAlive(next.pid), 'the instance to stop')
})

test('nyala upgrade without a running instance fails and says why', async (t) => {
  const root = await makeRoot(t, config)
  const res = await runCli(['upgrade', '--root', root, '--pidfile', 'other/x.pid'], { cwd: root })
  assert.equal(res.code, 1)
  assert.match(
    res.stderr,
    new RegExp(
      `NYALA_ERR_NOT_RUNNING: no running instance to upgrade: pidfile ${root}/other/x.pid does not exist`,
    ),
  )
  const bad = await runCli(['upgrade', '--root', root, '--log-level', 'loud'], { cwd: root })
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /NYALA_ERR_CONFIG_VALUE: command line: key "--log-level" has value "loud"/)
  const help = await runCli(['upgrade', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /Usage: nyala upgrade/)
  assert.match(help.stdout, /--upgrade-socket FILE/)
  const startHelp = await runCli(['start', '--help'])
  assert.match(startHelp.stdout, /--daemonize/)
  assert.match(startHelp.stdout, /SIGQUIT/)
})
