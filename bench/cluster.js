// Worker processes (issue 16): requests per second with 1 and 2 workers for a bare Fastify app
// under Node's cluster module, the same app under pm2's cluster mode, and Nyala (`nyala start`,
// and `nyala start --workers 2` where this build has it); failed requests while each is reloaded
// 50 times under load (`pm2 reload` against Nyala's admin API reload); failed requests and the
// time until a replacement serves when one worker is killed with SIGKILL; CPU per request of every
// process involved, and what that says about more cores.
//
// Throughput: every contender is started first, then each round loads them one after the other
// with the same autocannon settings (16 connections, 10 requests in flight each, so the client's
// cost per request is low), the order reversed every round; the figure is the median of the
// rounds, the ratio is to Node's cluster with 1 worker in the same round. This machine has 2
// cores shared by the client and the servers: the 2-worker rows cannot double (see the notes).
import { readFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { runAutocannon, startClusterLoad } from './cluster-load.js'
import {
  assertBuilt,
  cliPath,
  cpuMicros,
  descendantPids,
  freePort,
  makeRoot,
  medianOf,
  packModule,
  percentileOf,
  pidsNaming,
  request,
  round,
  startServer,
  withSession,
  writeModule,
} from './common.js'
import { startPm2 } from './pm2-control.js'

const appPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cluster-app.js')
export const notAvailable = 'nyala --workers: not available in this build'

const full = {
  roundSeconds: 5,
  rounds: 3,
  warmupSeconds: 2,
  connections: 16,
  pipelining: 10,
  reloads: 50,
  kills: 5,
  // issue 16: over a 60 s keep-alive load the busiest worker serves <= 1.2x the least busy one
  balance: { connections: 64, seconds: 60 },
  // paced loads for the reload and kill phases: every failure counts, not the speed
  keepAlive: { concurrency: 8, rate: 400 },
  fresh: { concurrency: 4, rate: 100 },
  killLoad: { concurrency: 8, rate: 300 },
}
// the same shape, the loads halved
const quick = {
  ...full,
  roundSeconds: 0.5,
  rounds: 1,
  warmupSeconds: 0.2,
  reloads: 1,
  kills: 1,
  balance: { connections: 16, seconds: 1 },
  keepAlive: { concurrency: 4, rate: 200 },
  fresh: { concurrency: 2, rate: 50 },
  killLoad: { concurrency: 4, rate: 150 },
}

/**
 * @param {{ quick?: boolean, duration?: number, rounds?: number, signal?: AbortSignal,
 *   progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.roundSeconds = opts.duration
  if (opts.rounds) settings.rounds = opts.rounds
  const progress = opts.progress ?? (() => {})
  const check = () => opts.signal?.throwIfAborted()
  assertBuilt([cliPath, packModule])
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir('nyala-bench-cluster-')
    const pm2 = await startPm2(session)
    try {
      progress('starting Node cluster (1 and 2 workers), pm2 (1 and 2 instances) and Nyala')
      const contenders = await startContenders(session, work, pm2)
      check()
      const table = []
      const throughput = await measureThroughput(session, contenders, settings, progress, check)
      table.push(...throughput.rows)

      const nyalaTwo = contenders.find((c) => c.key === 'nyala-2')
      const balance = nyalaTwo.unavailable
        ? undefined
        : await nyalaBalance(session, nyalaTwo, settings, progress)
      if (balance) table.push(balance.row)

      progress(`reloads under load: pm2 reload x ${settings.reloads}`)
      const pm2Bare = contenders.find((c) => c.key === 'pm2-2')
      const reloads = []
      reloads.push(
        await reloadUnderLoad(session, pm2Bare, settings, async () => {
          const r = await pm2.reload(pm2Bare.pm2Name)
          return { ok: r.code === 0, ms: r.ms }
        }),
      )
      check()
      for (const key of ['nyala-2', 'nyala-1']) {
        const nyala = contenders.find((c) => c.key === key)
        if (nyala.unavailable) {
          reloads.push({ label: nyala.label, unavailable: nyala.unavailable })
          continue
        }
        progress(`reloads under load: ${nyala.label}, admin API reload x ${settings.reloads}`)
        const url = `${nyala.adminUrl}/modules/pid/reload?force=true`
        reloads.push(
          await reloadUnderLoad(session, nyala, settings, async () => {
            const t0 = performance.now()
            const res = await request(url, { method: 'POST', timeoutMs: 30_000 }).catch((error) => ({
              error,
            }))
            const ok = res.status === 200 && res.body?.result !== 'failed'
            return {
              ok,
              ms: performance.now() - t0,
              error: ok ? undefined : (res.error?.message ?? res.text),
              skewMs: skewOf(res.body),
            }
          }),
        )
        check()
      }
      for (const r of reloads) table.push(reloadRow(r))

      progress(`kill -9 of one worker under new connections, ${settings.kills} time(s): pm2`)
      const kills = []
      kills.push(await killUnderLoad(session, pm2Bare, settings, () => pm2.workerPids(pm2Bare.pm2Name)))
      check()
      const nyala2 = contenders.find((c) => c.key === 'nyala-2')
      if (nyala2.unavailable) kills.push({ label: nyala2.label, unavailable: nyala2.unavailable })
      else {
        progress(`kill -9 of one worker: ${nyala2.label}`)
        kills.push(await killUnderLoad(session, nyala2, settings, () => nyalaWorkerPids(nyala2)))
      }
      for (const k of kills) table.push(killRow(k))

      const notes = [
        ...throughput.notes,
        ...(balance ? [balance.note] : []),
        ...reloadNotes(reloads),
        ...killNotes(kills),
      ]
      notes.push(...coresNotes(throughput.summary))
      notes.push(
        `Load average (1 min) at the start ${round(os.loadavg()[0], 2)} is in each table's "load avg" column; ` +
          'the machine is shared: compare rows of one run, not runs.',
      )
      for (const c of contenders) await c.stop?.()
      const left = await pm2.close()
      notes.push(
        `pm2 kill: ${left.length === 0 ? 'daemon and workers gone' : `SIGKILLed ${left.join(', ')}`}`,
      )
      return {
        name: 'cluster',
        table,
        notes,
        summary: {
          settings,
          throughput: throughput.summary,
          balance: balance?.summary,
          reloads,
          kills,
          pm2Home: pm2.home,
          pm2Left: left.length,
          pm2Pids: [...pm2.seen],
          workDir: work,
        },
      }
    } finally {
      // on any way out: a Nyala host or successor that left our process groups names `work`
      await stopStrays(session, work)
      await pm2.close()
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Contenders

/**
 * Each contender: { key, label, workers, url, pids() (every process serving: primary first),
 * stop() } or { key, label, unavailable }.
 */
async function startContenders(session, work, pm2) {
  const contenders = []
  for (const workers of [1, 2]) {
    const server = await startServer(session, `node cluster ${workers}`, [
      appPath,
      '--workers',
      String(workers),
      '--policy',
      'rr',
      '--app',
      'fastify',
    ])
    contenders.push({
      key: `node-${workers}`,
      label: `Node cluster, ${workers} worker${workers > 1 ? 's' : ''}`,
      workers,
      url: `http://127.0.0.1:${server.port}/`,
      pids: () => [server.pid, ...descendantPids(server.pid)],
      stop: () => server.stop(),
    })
  }
  for (const workers of [1, 2]) {
    const port = await freePort()
    const name = `bare${workers}`
    await pm2.start(appPath, { name, instances: workers, env: { APP: 'fastify', PORT: String(port) } })
    const url = `http://127.0.0.1:${port}/`
    await waitAnswering(url, 20_000)
    contenders.push({
      key: `pm2-${workers}`,
      label: `pm2 cluster, ${workers} instance${workers > 1 ? 's' : ''}`,
      workers,
      url,
      pm2Name: name,
      pids: async () => [await pm2.daemonPid(), ...(await pm2.workerPids(name))],
    })
  }
  const src = path.join(work, 'src', 'pid')
  const index =
    "module.exports = {\n  async register(app) {\n    app.get('/', async () => String(process.pid))\n  },\n}\n"
  for (const workers of [1, 2]) {
    // 1 worker is today's single process, which `--workers 1` must equal (issue 16)
    const root = await makeRoot(path.join(work, `nyala-${workers}`), { 'admin.host': '127.0.0.1' })
    await writeModule(src, index, path.join(root, 'modules', 'pid.zip'))
    const args = [cliPath, 'start', '--root', root, ...(workers > 1 ? ['--workers', String(workers)] : [])]
    const label = workers > 1 ? `Nyala, --workers ${workers}` : 'Nyala, 1 process'
    let server
    try {
      server = await startServer(session, label, args, { cwd: root, readyTimeoutMs: 60_000, stopMs: 10_000 })
    } catch (err) {
      // only the CLI's refusal of the option means "not in this build"; any other failure is one
      if (workers > 1 && /Unknown option '--workers'/.test(err.message)) {
        contenders.push({ key: `nyala-${workers}`, label, workers, unavailable: notAvailable })
        continue
      }
      throw err
    }
    const adminUrl = server.adminPort ? `http://127.0.0.1:${server.adminPort}` : await adminUrlOf(root)
    const url = `http://127.0.0.1:${server.port}/pid`
    await waitAnswering(url, 20_000)
    contenders.push({
      key: `nyala-${workers}`,
      label,
      workers,
      url,
      adminUrl,
      pids: () => [server.pid, ...descendantPids(server.pid)],
      stop: async () => {
        await server.stop()
        // a successor the host started (`start --upgrade`) leaves our process group: anything
        // still naming this root is ours to stop
        await stopStrays(session, root)
      },
    })
  }
  return contenders
}

/** SIGTERM, then SIGKILL after 5 s, to every process whose command line names `root`. */
async function stopStrays(session, root) {
  const strays = pidsNaming(root)
  for (const pid of strays) session.adopt(pid)
  const signal = (sig) => {
    for (const pid of pidsNaming(root)) {
      try {
        process.kill(pid, sig)
      } catch {
        // gone meanwhile
      }
    }
  }
  signal('SIGTERM')
  const deadline = performance.now() + 5000
  while (performance.now() < deadline && pidsNaming(root).length > 0) await delay(100)
  signal('SIGKILL')
  for (const pid of strays) session.pids.delete(pid)
  return strays.length
}

/** The admin URL a host wrote beside its pidfile (src/http/admin-url.ts). */
async function adminUrlOf(root) {
  return (await readFile(path.join(root, 'run', 'admin.url'), 'utf8')).trim().replace(/\/$/, '')
}

async function waitAnswering(url, ms) {
  const deadline = performance.now() + ms
  let last
  while (performance.now() < deadline) {
    const res = await request(url, { timeoutMs: 2000 }).catch((error) => ({ error }))
    if (res.status === 200 && /^\d+$/.test(res.text)) return
    last = res.error?.message ?? `${res.status} ${res.text}`
    await delay(50)
  }
  throw new Error(`${url} did not answer a pid within ${ms} ms (last: ${last})`)
}

/** GET /workers on the supervisor's admin API (issue 16): the pids of the workers serving. */
async function nyalaWorkerPids(nyala) {
  const res = await request(`${nyala.adminUrl}/workers`, { timeoutMs: 5000 })
  if (res.status !== 200 || !Array.isArray(res.body?.workers)) {
    throw new Error(`GET /workers answered ${res.status} ${res.text.slice(0, 200)}`)
  }
  return (
    res.body.workers
      // a worker still starting or already stopping does not count as serving
      .filter(
        (w) =>
          Number.isInteger(w.pid) && !/start|stop|drain|dead|fail|exit|crash/i.test(String(w.state ?? '')),
      )
      .map((w) => w.pid)
  )
}

// ---------------------------------------------------------------------------------------------
// Throughput

async function measureThroughput(session, contenders, settings, progress, check) {
  const live = contenders.filter((c) => !c.unavailable)
  const rounds = new Map(live.map((c) => [c.key, []]))
  // the first seconds of a fresh process run unoptimized code: not what any contender is judged on
  progress(`throughput warm-up: ${settings.warmupSeconds} s per contender`)
  for (const c of live) await loadOnce(session, c, { ...settings, roundSeconds: settings.warmupSeconds })
  for (let i = 0; i < settings.rounds; i++) {
    const order = i % 2 === 0 ? live : [...live].reverse()
    progress(`throughput round ${i + 1}/${settings.rounds}: ${settings.roundSeconds} s per contender`)
    for (const c of order) {
      check()
      rounds.get(c.key).push(await loadOnce(session, c, settings))
      await delay(200)
    }
  }
  const rows = []
  const summary = {}
  const baseline = rounds.get('node-1')
  for (const c of contenders) {
    if (c.unavailable) {
      rows.push({ section: 'throughput', server: c.label, workers: c.workers, note: c.unavailable })
      summary[c.key] = { unavailable: c.unavailable }
      continue
    }
    const rs = rounds.get(c.key)
    const med = (key) => medianOf(rs.map((r) => r[key]))
    const ratios = rs.map((r, i) => r.rps / baseline[i].rps)
    const s = {
      rps: round(med('rps'), 0),
      ratio: round(medianOf(ratios), 2),
      rounds: rs.map((r) => round(r.rps, 0)),
      // CPU per request moves with the rate a round got (fewer requests per wake-up when starved)
      roundsServerCpuPerReq: rs.map((r) => round(r.serverCpuPerReq, 1)),
      primaryCpuPerReq: round(med('primaryCpuPerReq'), 1),
      workersCpuPerReq: round(med('workersCpuPerReq'), 1),
      serverCpuPerReq: round(med('serverCpuPerReq'), 1),
      clientCpuPerReq: round(med('clientCpuPerReq'), 1),
      p99: round(med('p99'), 1),
      errors: rs.reduce((n, r) => n + r.errors, 0),
      loadavg: round(med('loadavg'), 2),
    }
    summary[c.key] = s
    rows.push({
      section: 'throughput',
      server: c.label,
      workers: c.workers,
      'req/s': s.rps,
      'ratio to Node 1': s.ratio,
      'p99 ms': s.p99,
      'primary cpu us/req': s.primaryCpuPerReq,
      'workers cpu us/req': s.workersCpuPerReq,
      'all servers cpu us/req': s.serverCpuPerReq,
      'client cpu us/req': s.clientCpuPerReq,
      errors: s.errors,
      'load avg': s.loadavg,
    })
  }
  const notes = [
    `Throughput: autocannon, ${settings.connections} connections x ${settings.pipelining} pipelined, ` +
      `${settings.roundSeconds} s per contender per round, ${settings.rounds} round(s), order reversed each ` +
      'round; medians; ratio to Node cluster with 1 worker in the same round. cpu from /proc (10 ms ticks): ' +
      'primary = the cluster primary (Node), the pm2 daemon (pm2), the supervisor (Nyala with workers); ' +
      'Nyala with 1 process counts as its worker.',
  ]
  return { rows, notes, summary }
}

/** One autocannon load of `c`, with the CPU of every process serving it and of this client. */
async function loadOnce(session, c, settings) {
  const pids = await c.pids()
  const ticks = () => pids.map((pid) => cpuMicros(pid) ?? 0)
  const before = ticks()
  const clientBefore = process.cpuUsage()
  const loadavg = os.loadavg()[0]
  const result = await runAutocannon(session, {
    url: c.url,
    connections: settings.connections,
    pipelining: settings.pipelining,
    seconds: settings.roundSeconds,
  })
  const client = process.cpuUsage(clientBefore)
  const after = ticks()
  const requests = result.requests.total
  const used = after.map((a, i) => Math.max(0, a - before[i]))
  const per = (micros) => (requests > 0 ? micros / requests : Number.NaN)
  // a single process (Nyala without workers) is its own worker: no primary
  const primary = pids.length > 1 ? used[0] : 0
  const all = used.reduce((a, b) => a + b, 0)
  return {
    rps: result.duration > 0 ? requests / result.duration : 0,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
    primaryCpuPerReq: per(primary),
    workersCpuPerReq: per(all - primary),
    serverCpuPerReq: per(all),
    clientCpuPerReq: per(client.user + client.system),
    loadavg,
  }
}

/** Requests each Nyala worker has served, by slot (GET /workers `served`). */
async function servedByWorker(nyala) {
  const res = await request(`${nyala.adminUrl}/workers`, { timeoutMs: 5000 })
  return new Map(res.body.workers.map((w) => [w.worker, { pid: w.pid, served: w.served ?? 0 }]))
}

/**
 * Nyala's own spread (issue 16, part 1): a keep-alive load opened at once and kept for
 * `settings.balance.seconds`; the requests each worker served in it, from the supervisor's
 * GET /workers before and after.
 */
async function nyalaBalance(session, nyala, settings, progress) {
  const { connections, seconds } = settings.balance
  progress(`balance: ${nyala.label}, ${connections} keep-alive connections for ${seconds} s`)
  const before = await servedByWorker(nyala)
  const loadavg = round(os.loadavg()[0], 2)
  const result = await runAutocannon(session, { url: nyala.url, connections, seconds })
  const after = await servedByWorker(nyala)
  const served = [...after].map(([slot, a]) => ({
    worker: slot,
    pid: a.pid,
    requests: a.served - (before.get(slot)?.pid === a.pid ? before.get(slot).served : 0),
  }))
  const counts = served.map((w) => w.requests)
  const ratio =
    Math.min(...counts) > 0 ? round(Math.max(...counts) / Math.min(...counts), 2) : Number.POSITIVE_INFINITY
  const failed = result.errors + result.timeouts + result.non2xx
  // a second of load says nothing about a spread that a burst of connections at the start decides
  const verdict = seconds < 10 ? 'too short to judge' : ratio <= 1.2 ? 'met' : 'NOT met'
  return {
    row: {
      section: 'balance',
      server: nyala.label,
      workers: served.length,
      'requests per worker': counts.join(' / '),
      'busiest / least busy': ratio,
      errors: failed,
      'load avg': loadavg,
    },
    note:
      `Balance (Nyala, fewest open connections): ${connections} keep-alive connections for ${seconds} s; ` +
      `requests per worker ${counts.join(' / ')}, busiest/least busy ${ratio} (target <= 1.2: ${verdict}); ` +
      `${failed} failed.`,
    summary: { connections, seconds, served, ratio, failed, loadavg, verdict },
  }
}

// ---------------------------------------------------------------------------------------------
// Reloads and kills under load

/** A keep-alive load and a new-connection load on `c` while `reload()` runs `settings.reloads` times. */
async function reloadUnderLoad(session, c, settings, reload) {
  const keepAlive = startClusterLoad(session, { url: c.url, keepAlive: true, ...settings.keepAlive })
  const fresh = startClusterLoad(session, { url: c.url, keepAlive: false, ...settings.fresh })
  const loadavg = os.loadavg()[0]
  const times = []
  const skews = []
  let failedReloads = 0
  const reloadErrors = []
  try {
    await delay(500)
    for (let i = 0; i < settings.reloads; i++) {
      const r = await reload()
      times.push(r.ms)
      if (typeof r.skewMs === 'number') skews.push(r.skewMs)
      if (!r.ok) {
        failedReloads++
        if (reloadErrors.length < 3) reloadErrors.push(r.error ?? 'failed')
      }
      await delay(100)
    }
    await delay(1000)
  } finally {
    await Promise.all([keepAlive.finish(), fresh.finish()])
  }
  const kinds = new Map(keepAlive.kinds)
  for (const [k, n] of fresh.kinds) kinds.set(k, (kinds.get(k) ?? 0) + n)
  return {
    label: c.label,
    reloads: times.length,
    failedReloads,
    reloadErrors,
    requests: keepAlive.ok + keepAlive.failed + fresh.ok + fresh.failed,
    failedKeepAlive: keepAlive.failed,
    failedFresh: fresh.failed,
    failed: keepAlive.failed + fresh.failed,
    kinds: Object.fromEntries(kinds),
    reloadMs: {
      p50: round(percentileOf(times, 50), 1),
      p99: round(percentileOf(times, 99), 1),
      max: round(percentileOf(times, 100), 1),
      total: round(times.reduce((a, b) => a + b, 0) / 1000, 1),
    },
    // issue 16's commit skew (first to last worker's swap, target <= 5 ms), where the reload reports it
    skewMs:
      skews.length > 0
        ? {
            p50: round(percentileOf(skews, 50), 2),
            p99: round(percentileOf(skews, 99), 2),
            samples: skews.length,
          }
        : undefined,
    loadavg: round(loadavg, 2),
  }
}

/**
 * The commit skew a reload result reports: the first number under a key naming "skew", at any
 * depth (the result of a reload across workers is issue 16's and may still change shape).
 */
function skewOf(body, depth = 0) {
  if (body === null || typeof body !== 'object' || depth > 4) return undefined
  for (const [key, value] of Object.entries(body)) {
    if (/skew/i.test(key) && typeof value === 'number') return value
  }
  for (const value of Object.values(body)) {
    const found = skewOf(value, depth + 1)
    if (found !== undefined) return found
  }
  return undefined
}

function reloadRow(r) {
  if (r.unavailable) return { section: 'reloads under load', server: r.label, note: r.unavailable }
  return {
    section: 'reloads under load',
    server: r.label,
    reloads: r.reloads,
    'failed reloads': r.failedReloads,
    requests: r.requests,
    'failed keep-alive': r.failedKeepAlive,
    'failed new conn': r.failedFresh,
    'error kinds': kindsText(r.kinds),
    'reload p50 ms': r.reloadMs.p50,
    'reload p99 ms': r.reloadMs.p99,
    'reload max ms': r.reloadMs.max,
    'all reloads s': r.reloadMs.total,
    'commit skew p50 ms': r.skewMs?.p50,
    'commit skew p99 ms': r.skewMs?.p99,
    'load avg': r.loadavg,
  }
}

const kindsText = (kinds) =>
  Object.entries(kinds)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none'

function reloadNotes(reloads) {
  const notes = []
  for (const r of reloads) {
    if (r.unavailable) {
      notes.push(`Reloads, ${r.label}: ${r.unavailable}`)
      continue
    }
    const pct = r.requests > 0 ? round((r.failed / r.requests) * 100, 2) : 0
    notes.push(
      `Reloads, ${r.label}: ${r.failed} failed requests of ${r.requests} (${pct} %) over ${r.reloads} reloads ` +
        `(${kindsText(r.kinds)}); ${r.failedReloads} reload(s) failed${r.reloadErrors.length ? `: ${r.reloadErrors.join('; ')}` : ''}; ` +
        `each took p50 ${r.reloadMs.p50} ms, max ${r.reloadMs.max} ms` +
        (r.skewMs ? `; commit skew p50 ${r.skewMs.p50} ms, p99 ${r.skewMs.p99} ms (target <= 5)` : ''),
    )
  }
  notes.push(
    'Reload load: keep-alive loops and new-connection loops, paced, on the app with 2 workers; pm2 reload ' +
      'restarts the workers one at a time, Nyala reloads the module in place (POST /modules/pid/reload?force=true).',
  )
  return notes
}

/**
 * A new-connection load on `c`; `settings.kills` times: SIGKILL one worker (from `workerPids()`),
 * time until a pid not serving before answers, then wait until the full set is back.
 */
async function killUnderLoad(session, c, settings, workerPids) {
  const load = startClusterLoad(session, { url: c.url, keepAlive: false, ...settings.killLoad })
  const loadavg = os.loadavg()[0]
  const samples = []
  try {
    await delay(500)
    for (let i = 0; i < settings.kills; i++) {
      const pids = await workerPids()
      if (pids.length < c.workers)
        throw new Error(`${c.label}: ${pids.length} worker(s) online, want ${c.workers}`)
      const victim = pids[i % pids.length]
      const failedBefore = load.failed
      const t0 = performance.now()
      process.kill(victim, 'SIGKILL')
      session.pids.delete(victim)
      const seen = await load.waitForNewPid(t0, new Set(pids), 20_000)
      // back to full strength before the next kill, and a second of load after it
      const deadline = performance.now() + 20_000
      while (performance.now() < deadline && (await workerPids()).length < c.workers) await delay(100)
      await delay(1000)
      samples.push({
        victim,
        replacementMs: seen === undefined ? undefined : round(seen - t0, 0),
        failed: load.failed - failedBefore,
      })
    }
  } finally {
    await load.finish()
  }
  const times = samples.map((s) => s.replacementMs).filter((v) => v !== undefined)
  return {
    label: c.label,
    kills: samples.length,
    samples,
    requests: load.ok + load.failed,
    failed: load.failed,
    kinds: Object.fromEntries(load.kinds),
    replacementMs: { p50: round(percentileOf(times, 50), 0), max: round(percentileOf(times, 100), 0) },
    notReplaced: samples.length - times.length,
    loadavg: round(loadavg, 2),
  }
}

function killRow(k) {
  if (k.unavailable) return { section: 'kill -9 of one worker', server: k.label, note: k.unavailable }
  return {
    section: 'kill -9 of one worker',
    server: k.label,
    kills: k.kills,
    requests: k.requests,
    failed: k.failed,
    'error kinds': kindsText(k.kinds),
    'replacement serves p50 ms': k.replacementMs.p50,
    'replacement max ms': k.replacementMs.max,
    'not replaced': k.notReplaced,
    'load avg': k.loadavg,
  }
}

function killNotes(kills) {
  return kills.map((k) =>
    k.unavailable
      ? `kill -9, ${k.label}: ${k.unavailable}`
      : `kill -9, ${k.label}: ${k.failed} failed requests of ${k.requests} over ${k.kills} kill(s) ` +
        `(${kindsText(k.kinds)}); a replacement served after [${k.samples.map((s) => s.replacementMs ?? 'never').join(', ')}] ms`,
  )
}

// ---------------------------------------------------------------------------------------------
// More cores

/** What the CPU per request says about a machine with more cores, from this run's figures. */
function coresNotes(s) {
  const one = s['node-1']
  const two = s['node-2']
  if (!one?.rps || !two?.rps) return []
  const notes = []
  const perCore = (us) => round(1e6 / us, 0)
  notes.push(
    `CPU per request: Node cluster workers ${two.workersCpuPerReq} us with 2 workers (${one.workersCpuPerReq} with 1), ` +
      `its primary ${two.primaryCpuPerReq} us, pm2's daemon ${s['pm2-2']?.primaryCpuPerReq ?? 'n/a'} us, ` +
      `the client ${two.clientCpuPerReq} us; Nyala 1 process ${s['nyala-1']?.serverCpuPerReq ?? 'n/a'} us` +
      (s['nyala-2']?.rps
        ? `, Nyala 2 workers ${s['nyala-2'].serverCpuPerReq} us (supervisor included)`
        : '') +
      '.',
  )
  const total = two.serverCpuPerReq + two.clientCpuPerReq
  // the share of the machine this run got: CPU seconds per second of servers and client together
  const cores = (two.rps * total) / 1e6
  const primary =
    two.primaryCpuPerReq > 0.5
      ? `${two.primaryCpuPerReq} us per request on keep-alive, one process: a cap of ${perCore(two.primaryCpuPerReq)} req/s`
      : 'next to nothing per request on keep-alive'
  notes.push(
    `More cores: 1 -> 2 workers gave x${round(two.rps / one.rps, 2)} (${one.rps} -> ${two.rps} req/s). ` +
      `At ${round(total, 1)} us of CPU per request (servers ${two.serverCpuPerReq} + client ${two.clientCpuPerReq}) ` +
      `2 whole cores would allow ${perCore(total / 2)} req/s; the load used ${round(cores, 2)} cores ` +
      `(load average ${two.loadavg}: the rest went to other processes), so here the cores, shared with the ` +
      "client and the machine's other users, set the pace, not the number of workers. With the client on other " +
      `machines and a core per worker, each worker would serve up to about ${perCore(two.workersCpuPerReq)} req/s ` +
      `(1e6 / ${two.workersCpuPerReq} us), N workers about N times that, until the primary (${primary}; ` +
      'it accepts and passes every new connection: see cluster-balance) or the network is the limit.',
  )
  return notes
}
