// Worker processes (issue 16): `nyala start --workers 2` makes the process a supervisor that
// owns the listeners and hands each accepted connection to one of two worker processes, each
// running every module. A reload is prepared in both workers and committed in both, or
// aborted in both. A worker that dies or stalls is replaced at the committed generations.
// Real CLI, real processes and signals, real sockets on 127.0.0.1.
import assert from 'node:assert/strict'
import { readFile, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import {
  agentGet,
  deploy,
  isAlive,
  keepAliveLoad,
  killAfter,
  makeRoot,
  request,
  runCli,
  startDaemon,
  startHost,
  waitUntil,
} from './helpers.js'

// answers with the worker's pid and slot and the generation; `register` throws in worker 2 while
// the file `refuse-in-2` exists beside the root (a bundle that fails in one worker only)
const pidIndex = `const fs = require('node:fs')
module.exports = { async register (app, ctx) {
  if (process.env.NYALA_WORKER_ID === '2' && fs.existsSync('refuse-in-2')) throw new Error('refused in worker 2')
  app.get('/', async () => ({ pid: process.pid, worker: process.env.NYALA_WORKER_ID, generation: ctx.generation }))
  app.get('/spin', async () => { for (;;) {} })
  app.get('/stuck', async () => { fs.writeFileSync('stuck.pid', String(process.pid)); for (;;) {} })
  app.get('/gc', async () => ({ gc: typeof globalThis.gc }))
  app.get('/crash', async () => { setTimeout(() => { throw new Error('boom in a worker') }, 1); return { pid: process.pid } })
} }
`

async function setUp(t, settings = '') {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nshutdown.grace.period=3\n${settings}`)
  await deploy(root, 'alpha', { files: { 'index.js': pidIndex } })
  await deploy(root, 'beta', { fields: { 'depends-on': 'alpha' }, files: { 'index.js': pidIndex } })
  const host = await startHost(t, root, ['--workers', '2', '--log-format', 'json'])
  // every process this test started: the supervisor (startHost kills it) and its workers
  const seen = new Set()
  t.after(async () => {
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  const workers = async () => {
    const res = await request(host.admin('/workers'))
    assert.equal(res.status, 200, res.text)
    for (const w of res.body.workers) if (w.pid) seen.add(w.pid)
    return res.body.workers
  }
  return { root, host, workers, seen }
}

/** One GET on a new connection (no keep-alive): { status, body } or { error }. */
function freshGet(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 15_000 }, (res) => {
      let text = ''
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
      res.on('error', (error) => resolve({ error }))
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (error) => resolve({ error }))
  })
}

test('two workers serve every module; reloads under keep-alive load fail no request and end on the new generation in every worker; SIGTERM stops the workers', async (t) => {
  const { root, host, workers, seen } = await setUp(t)
  const before = await workers()
  assert.equal(before.length, 2)
  assert.deepEqual(
    before.map((w) => [w.worker, w.state, w.generations]),
    [
      [1, 'serving', { alpha: 1, beta: 1 }],
      [2, 'serving', { alpha: 1, beta: 1 }],
    ],
  )
  const pids = before.map((w) => w.pid)
  assert.notEqual(pids[0], pids[1])
  assert.ok(!pids.includes(host.child.pid), 'the supervisor runs no module')

  // new connections go to both workers in turn
  const answers = []
  for (let i = 0; i < 8; i++) answers.push(await freshGet(host.url('/alpha/')))
  assert.ok(answers.every((a) => a.status === 200))
  assert.deepEqual(new Set(answers.map((a) => a.body.pid)), new Set(pids), 'both workers answered')

  const lanes = [[host.url('/alpha/')], [host.url('/beta/')], [host.url('/alpha/')], [host.url('/beta/')]]
  // two requests per lane after the last reload answered: those run on the new code
  const load = keepAliveLoad(t, lanes, { tail: 2 })
  for (let i = 0; i < 5; i++) {
    const res = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.result, 'reloaded')
    assert.deepEqual(res.body.generations, { alpha: 2 + i, beta: 2 + i }, 'the dependent is rebuilt too')
  }
  const results = await load.stop()
  const failed = results.filter((r) => r.error || r.status !== 200)
  assert.equal(failed.length, 0, `failed requests: ${JSON.stringify(failed.slice(0, 3))}`)
  assert.ok(results.length > 20)
  const lastPerLane = [0, 1, 2, 3].map((lane) => results.filter((r) => r.lane === lane).at(-1))
  for (const r of lastPerLane) assert.equal(r.body.generation, 6, 'every lane ends on the new code')

  const after = await workers()
  assert.deepEqual(
    after.map((w) => [w.pid, w.generations]),
    pids.map((pid) => [pid, { alpha: 6, beta: 6 }]),
    'no worker restarted to change code, each runs generation 6',
  )
  const modules = (await request(host.admin('/modules'))).body.modules
  const alpha = modules.find((m) => m.name === 'alpha')
  assert.equal(alpha.generation, 6)
  assert.deepEqual(alpha.workers, { generations: [6, 6], same: true })

  // each reload is reported once, with each worker's timings and the commit skew
  const reloads = host.logs().filter((r) => /^reloaded alpha/.test(r.msg ?? ''))
  assert.equal(reloads.length, 5)
  for (const r of reloads) {
    assert.deepEqual(r.workers.map((w) => w.worker).sort(), [1, 2])
    assert.equal(typeof r.skewMs, 'number')
  }

  // the console's figures: every worker's requests added up (the supervisor serves none itself)
  const stats = (await request(host.admin('/stats'))).body.modules
  const alphaServed = results.filter((r) => r.url.endsWith('/alpha/')).length + answers.length
  assert.ok(stats.alpha.requests >= alphaServed / 2, `alpha: ${stats.alpha.requests} of ${alphaServed}`)
  assert.ok(stats.alpha.requests <= alphaServed)

  // metrics: each worker's series labelled with its slot, the reloads and their skew once
  const text = (await request(host.admin('/metrics'))).text
  const served = (worker) =>
    Number(
      new RegExp(
        `^nyala_requests_total\\{module="alpha",status_class="2xx",worker="${worker}"\\} (\\d+)$`,
        'm',
      ).exec(text)?.[1] ?? -1,
    )
  assert.ok(served(1) > 0 && served(2) > 0, 'both workers counted requests to alpha')
  assert.match(text, /^nyala_reloads_total\{result="reloaded"\} 5$/m)
  assert.match(text, /^nyala_reload_commit_skew_seconds_count 5$/m)
  assert.match(text, /^nyala_process_resident_memory_bytes\{worker="2"\} \d+/m)

  const status = await runCli(['status', '--root', root])
  assert.equal(status.code, 0, status.stderr)
  assert.match(status.stdout, /^WORKER\s+PID\s+STATE\s+RESTARTS/m)
  for (const pid of pids)
    assert.match(status.stdout, new RegExp(`^\\d\\s+${pid}\\s+serving\\s+0\\s+.*alpha:6 beta:6$`, 'm'))

  const { code } = await host.stop('SIGTERM')
  assert.equal(code, 0)
  await waitUntil(
    () => [...seen].every((pid) => !isAlive(pid)),
    'the workers to exit with the supervisor',
    15_000,
  )
})

test('cluster.commit.lead: every worker swaps at the instant the supervisor chose, and no module sees a gc function', async (t) => {
  // a lead far above any COMMIT's delivery time: both workers have it before the instant, so
  // both swap exactly then (Dispatcher.swapAt) and the reload reports a skew of 0
  const { host, workers } = await setUp(t, 'cluster.commit.lead=1500\n')
  for (let i = 0; i < 3; i++) {
    const res = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
    assert.equal(res.status, 200, res.text)
    assert.deepEqual(res.body.generations, { alpha: 2 + i, beta: 2 + i })
    // the answer comes after the swap: new connections find the new code in either worker
    for (let j = 0; j < 4; j++) {
      const a = await freshGet(host.url('/alpha/'))
      assert.equal(a.status, 200)
      assert.equal(a.body.generation, 2 + i)
    }
  }
  const reloads = host.logs().filter((r) => /^reloaded alpha/.test(r.msg ?? ''))
  assert.equal(reloads.length, 3)
  for (const r of reloads) {
    assert.equal(r.workers.length, 2)
    assert.equal(r.skewMs, 0, JSON.stringify(r.workers))
  }
  assert.deepEqual(
    (await workers()).map((w) => w.generations),
    [
      { alpha: 4, beta: 4 },
      { alpha: 4, beta: 4 },
    ],
  )
  // the heap is settled before READY with a gc function exposed to Nyala only (settle-heap.ts)
  const gc = await freshGet(host.url('/alpha/gc'))
  assert.deepEqual(gc.body, { gc: 'undefined' })
})

test('a bundle that fails to start in one worker only is aborted in every worker; the old generation serves everywhere', async (t) => {
  const { root, host, workers } = await setUp(t)
  const flag = path.join(root, 'refuse-in-2')
  await writeFile(flag, 'x')
  const res = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
  assert.equal(res.body.result, 'failed', res.text)
  assert.equal(res.body.error.code, 'NYALA_ERR_MODULE_REGISTER_FAILED')
  assert.match(res.body.error.message, /refused in worker 2/)
  const now = await workers()
  assert.deepEqual(
    now.map((w) => w.generations),
    [
      { alpha: 1, beta: 1 },
      { alpha: 1, beta: 1 },
    ],
    'worker 1 stopped the generation it had started',
  )
  for (let i = 0; i < 4; i++) {
    const a = await freshGet(host.url('/alpha/'))
    assert.equal(a.status, 200)
    assert.equal(a.body.generation, 1)
  }
  const aborted = host
    .logs()
    .filter((r) => /could not start alpha: aborting in every worker/.test(r.msg ?? ''))
  assert.equal(aborted.length, 1)
  assert.equal(aborted[0].worker, 2)

  // the numbers of the aborted generations are given out again
  await rm(flag)
  const again = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
  assert.equal(again.body.result, 'reloaded', again.text)
  assert.deepEqual(again.body.generations, { alpha: 2, beta: 2 })
  assert.deepEqual(
    (await workers()).map((w) => w.generations),
    [
      { alpha: 2, beta: 2 },
      { alpha: 2, beta: 2 },
    ],
  )
})

test('kill -9 of a worker under a load of new connections: no connection refused, a replacement serves at the committed generation', async (t) => {
  const { host, workers } = await setUp(t)
  const reload = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
  assert.deepEqual(reload.body.generations, { alpha: 2, beta: 2 })
  const [first] = await workers()

  let stop = false
  const results = []
  const lanes = [0, 1].map(async () => {
    while (!stop) results.push(await freshGet(host.url('/alpha/')))
  })
  await waitUntil(() => results.length >= 10, 'load before the kill')
  process.kill(first.pid, 'SIGKILL')
  let replacementPid
  await waitUntil(
    async () => {
      const w = (await workers())[0]
      replacementPid = w.pid
      return w.state === 'serving' && w.pid !== first.pid
    },
    'a replacement worker',
    30_000,
  )
  const count = results.length
  await waitUntil(() => results.length >= count + 10, 'load after the replacement')
  // new connections reach the replacement: fewest-open hands it fewer while its first requests
  // run cold (a slow worker holds its connections longer), so this waits for one, bounded
  await waitUntil(
    () => results.slice(count).some((r) => r.body?.pid === replacementPid),
    'the replacement to answer a new connection',
    15_000,
  )
  stop = true
  await Promise.all(lanes)

  const refused = results.filter((r) => r.error?.code === 'ECONNREFUSED')
  assert.equal(refused.length, 0, 'the supervisor kept accepting')
  // a request the killed worker was answering dies with it; nothing else fails, and nothing
  // waits for its client to give up: connections handed to the worker that it never took (Node
  // queues them until it acknowledges the one before) go to the other worker
  const failed = results.filter((r) => r.error || r.status !== 200)
  assert.deepEqual(
    failed.filter((f) => f.error?.message === 'timed out'),
    [],
    'no connection was left waiting',
  )
  assert.ok(
    failed.length <= 2,
    `failed: ${JSON.stringify(failed.map((f) => f.error?.code ?? f.error?.message ?? f.status))}`,
  )
  const replaced = (await workers())[0]
  assert.equal(replaced.restarts, 1)
  assert.deepEqual(replaced.generations, { alpha: 2, beta: 2 }, 'started at the committed generations')
  assert.equal(replaced.pid, replacementPid)
  assert.ok(
    host.logs().some((r) => r.code === 'NYALA_ERR_WORKER_EXITED' && r.worker === 1 && /SIGKILL/.test(r.msg)),
  )
})

test('connections queued for a worker that dies before taking them are served by the other worker, none left hanging', async (t) => {
  // a worker stuck in a request reads no more descriptors: Node writes the next one to it and
  // queues the ones after until it acknowledges; killed, it never does
  const { root, host } = await setUp(t, 'watchdog.stall.ms=60000\n')
  freshGet(host.url('/alpha/stuck'))
  const stuckPid = Number(
    await waitUntil(() => readFile(path.join(root, 'stuck.pid'), 'utf8').catch(() => ''), 'the stuck worker'),
  )
  // fewest open: the stuck worker never reports, so it gets about every other new connection.
  // Each connection's end is watched from the start: the one written to the stuck worker is
  // closed as soon as it dies, before any request is sent on it
  const sockets = []
  for (let i = 0; i < 8; i++) {
    const socket = net.connect(host.port, '127.0.0.1')
    socket.text = ''
    socket.on('data', (d) => (socket.text += d))
    socket.on('error', () => {})
    socket.ended = new Promise((resolve) => socket.on('close', resolve))
    await new Promise((resolve) => socket.once('connect', resolve))
    sockets.push(socket)
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  process.kill(stuckPid, 'SIGKILL')
  const rehanded = await waitUntil(
    () => host.logs().find((r) => /ended before taking/.test(r.msg ?? '')),
    'the queued connections handed on',
    15_000,
  )
  assert.ok(rehanded.connections >= 1)
  // each connection now answers or is closed; none waits (before: the queued ones hung)
  const outcomes = await Promise.all(
    sockets.map(async (socket) => {
      if (!socket.destroyed)
        socket.write('GET /alpha/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
      let timer
      const hung = new Promise((resolve) => {
        timer = setTimeout(() => resolve('hung'), 10_000)
      })
      const outcome = await Promise.race([socket.ended.then(() => 'ended'), hung])
      clearTimeout(timer)
      if (outcome === 'hung') socket.destroy()
      return outcome === 'hung' ? 'hung' : /^HTTP\/1\.1 200 /.test(socket.text) ? 'answered' : 'closed'
    }),
  )
  assert.deepEqual(
    outcomes.filter((o) => o === 'hung'),
    [],
    `every connection answered or closed: ${outcomes}`,
  )
  assert.ok(
    outcomes.filter((o) => o === 'answered').length >= rehanded.connections,
    `the queued ones were answered by the other worker: ${outcomes}`,
  )
})

test('a worker whose event loop is stuck is replaced: the new one first, then the stuck one is killed', async (t) => {
  const { host, workers } = await setUp(t, 'watchdog.stall.ms=1500\n')
  const before = await workers()
  // new connections alternate between the workers: one of these two spins forever
  const spins = [freshGet(host.url('/alpha/spin')), freshGet(host.url('/alpha/spin'))]
  await waitUntil(
    async () => {
      const now = await workers()
      return now.every((w) => w.state === 'serving') && now.every((w, i) => w.pid !== before[i].pid)
    },
    'both workers replaced',
    60_000,
  )
  const stalls = host.logs().filter((r) => r.code === 'NYALA_ERR_WORKER_STALLED')
  assert.equal(stalls.length, 2)
  await waitUntil(() => before.every((w) => !isAlive(w.pid)), 'the stuck workers to be killed', 15_000)
  for (const s of await Promise.all(spins)) assert.ok(s.error, 'the spinning request died with its worker')
  const a = await freshGet(host.url('/alpha/'))
  assert.equal(a.status, 200)
})

test('nyala upgrade with workers under load: every request gets 200, the new supervisor and its workers take over, the old ones exit', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=10\nworkers=2\n')
  await deploy(root, 'alpha', { files: { 'index.js': pidIndex } })
  const old = await startDaemon(t, root)
  const admin = (await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim()
  const workerPids = async () => {
    const res = await request(`${admin}/workers`, { headers: { connection: 'close' } })
    const pids = res.body.workers.map((w) => w.pid)
    for (const pid of pids) killAfter(t, pid)
    return pids
  }
  const oldWorkers = await workerPids()
  assert.equal(oldWorkers.length, 2)

  let upgraded = false
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => keepAlive.destroy())
  const loop = async (agent) => {
    const results = []
    let after = 0
    // bounded by time, not by a count that could run out before the upgrade ends (helpers.js)
    const deadline = Date.now() + 180_000
    while (Date.now() < deadline && after < 20) {
      results.push(agent ? await agentGet(agent, old.url('/alpha/')) : await freshGet(old.url('/alpha/')))
      if (upgraded) after++
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return results
  }
  const loops = [loop(keepAlive), loop(undefined)]
  await new Promise((resolve) => setTimeout(resolve, 300))
  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 120_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  upgraded = true
  const results = await Promise.all(loops)
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)
  const newWorkers = await workerPids()
  assert.equal(newWorkers.length, 2)
  for (const pid of newWorkers)
    assert.ok(!oldWorkers.includes(pid), 'the new supervisor started its own workers')

  for (const [name, list] of [
    ['keep-alive', results[0]],
    ['new connections', results[1]],
  ]) {
    const failures = list.filter((r) => r.error || r.status !== 200)
    assert.deepEqual(failures, [], `${name}: every request gets 200`)
    assert.ok(oldWorkers.includes(list[0].body.pid), `${name}: starts on the old workers`)
    assert.ok(
      newWorkers.includes(list.at(-1).body.pid),
      `${name}: ends on the new workers (${list.slice(-5).map((r) => r.body.pid)})`,
    )
  }
  await waitUntil(
    () => ![old.pid, ...oldWorkers].some((pid) => isAlive(pid)),
    'the old supervisor and its workers to exit',
    30_000,
  )
})

test('a module crash is restarted inside its worker only; the next reload gives every worker the same generation again', async (t) => {
  const { host, workers } = await setUp(t)
  const crashed = await freshGet(host.url('/alpha/crash'))
  assert.equal(crashed.status, 200)
  await waitUntil(async () => {
    const alpha = (await request(host.admin('/modules/alpha'))).body
    return alpha.workers.same === false
  }, 'the crashed worker to restart alpha')
  // the console's page says so too: the first worker's number, then each worker's
  const page = (await request(host.admin('/'))).text
  assert.match(page, /data-generation="[12]" title="per worker: [12], [12]">[12] · [12]\/[12]</)
  const byPid = Object.fromEntries((await workers()).map((w) => [w.pid, w.generations]))
  assert.deepEqual(
    byPid[crashed.body.pid],
    { alpha: 2, beta: 2 },
    'restarted with its dependent, in that worker',
  )
  const other = Object.keys(byPid).find((pid) => Number(pid) !== crashed.body.pid)
  assert.deepEqual(byPid[other], { alpha: 1, beta: 1 }, 'the other worker never saw the crash')

  const res = await request(host.admin('/modules/alpha/reload?force=true'), { method: 'POST' })
  assert.equal(res.body.result, 'reloaded', res.text)
  assert.deepEqual(res.body.generations, { alpha: 3, beta: 3 })
  assert.deepEqual(
    (await workers()).map((w) => w.generations),
    [
      { alpha: 3, beta: 3 },
      { alpha: 3, beta: 3 },
    ],
  )
  const alpha = (await request(host.admin('/modules/alpha'))).body
  assert.deepEqual(alpha.workers, { generations: [3, 3], same: true })
})

test('an isolated module runs in a thread of each worker process; a reload moves every worker to the new generation', async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nshutdown.grace.period=3\nisolation.thread.modules=iso\n',
  )
  const isoIndex = (tag) => `const { isMainThread, threadId } = require('node:worker_threads')
module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ pid: process.pid, isMainThread, threadId, generation: ctx.generation, tag: ${JSON.stringify(tag)} }))
} }
`
  await deploy(root, 'iso', { files: { 'index.js': isoIndex('one') } })
  await deploy(root, 'plain', { files: { 'index.js': pidIndex } })
  const host = await startHost(t, root, ['--workers', '2', '--log-format', 'json'])
  const seen = new Set()
  t.after(async () => {
    for (const pid of seen) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
  })
  const pids = (await request(host.admin('/workers'))).body.workers.map((w) => w.pid)
  for (const pid of pids) seen.add(pid)
  assert.equal(pids.length, 2)

  const answers = []
  for (let i = 0; i < 8; i++) answers.push(await freshGet(host.url('/iso/')))
  assert.ok(
    answers.every((a) => a.status === 200),
    JSON.stringify(answers.slice(0, 2)),
  )
  assert.deepEqual(new Set(answers.map((a) => a.body.pid)), new Set(pids), 'both workers answered')
  for (const a of answers) {
    assert.equal(
      a.body.isMainThread,
      false,
      'served from a worker thread, not the worker process main thread',
    )
    assert.equal(a.body.tag, 'one')
  }

  const listed = (await request(host.admin('/modules'))).body.modules
  const iso = listed.find((m) => m.name === 'iso')
  assert.equal(iso.isolation, 'thread')
  assert.equal(iso.threadIn, 'workers')
  assert.equal(listed.find((m) => m.name === 'plain').isolation, 'none')
  const status = await runCli(['status', '--root', root])
  assert.match(status.stdout, /^iso\s+running\s+.*thread \(in each worker\)/m)

  await deploy(root, 'iso', { files: { 'index.js': isoIndex('two') } })
  const res = await request(host.admin('/modules/iso/reload'), { method: 'POST' })
  assert.equal(res.status, 200, res.text)
  assert.deepEqual(res.body.generations, { iso: 2 })
  const after = []
  for (let i = 0; i < 8; i++) after.push(await freshGet(host.url('/iso/')))
  assert.deepEqual(new Set(after.map((a) => a.body.pid)), new Set(pids))
  for (const a of after) {
    assert.equal(a.status, 200)
    assert.equal(a.body.tag, 'two')
    assert.equal(a.body.generation, 2)
    assert.equal(a.body.isMainThread, false)
  }
  const plain = await freshGet(host.url('/plain/'))
  assert.equal(plain.status, 200)
})

test('workers=2: a forced reload of a crashed module gives it a fresh restart count in the worker that runs it', {
  timeout: 90_000,
}, async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nshutdown.grace.period=2\nworkers=2\nmodule.crash.max.restarts=1\nmodule.crash.window=600\n',
  )
  await deploy(root, 'crash', {
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  app.get('/', async () => ({ generation: ctx.generation, pid: process.pid }))
  app.get('/timeout', async () => { setTimeout(() => { throw new Error('boom') }, 1); return { pid: process.pid } })
} }
`,
    },
  })
  const host = await startHost(t, root)
  // one connection: every request goes to the same worker, whose supervisor counts its crashes
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  const crashes = () => host.logs().filter((r) => r.code === 'NYALA_ERR_MODULE_CRASHED')
  const crash = async (n) => {
    const { body } = await agentGet(agent, host.url('/crash/timeout'))
    await waitUntil(() => crashes().length === n, `crash ${n} to be logged`, 30_000)
    return { action: crashes()[n - 1].action, pid: body.pid }
  }
  const before = (await agentGet(agent, host.url('/crash/'))).body
  const first = await crash(1)
  assert.equal(first.action, 'restart')
  // the worker's own restart swapped in a new generation
  await waitUntil(
    async () => (await agentGet(agent, host.url('/crash/'))).body.generation > before.generation,
    'the crash restart to serve',
    30_000,
  )
  const reload = await request(host.admin('/modules/crash/reload?force=true'), { method: 'POST' })
  assert.equal(reload.status, 200, JSON.stringify(reload.body))
  const second = await crash(2)
  assert.equal(second.pid, first.pid, 'both crashes in the same worker')
  // max.restarts=1 within the window: without the fresh count this crash fails the module
  assert.equal(second.action, 'restart')
})
