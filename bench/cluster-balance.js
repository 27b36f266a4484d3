// How to spread connections over 2 workers, to choose the distribution of `nyala start --workers
// N` (issue 16). Node's cluster module offers two: round-robin (SCHED_RR: the primary accepts
// every connection and hands it to a worker; Node hands it to the first worker that has
// acknowledged its previous one, so "round-robin" only while the workers keep up) and a shared
// listening handle (SCHED_NONE: every worker accepts on the same socket, the kernel decides which
// one wakes). A third is what a supervisor that owns the listener can do itself: accept and hand
// each connection to the worker with the fewest open connections. A bare node:http server
// answering its pid (bench/cluster-app.js), three loads: 16 and 64 keep-alive connections
// (autocannon, opened at the start and kept), and a new connection per request (16 loops,
// bench/cluster-load.js). The workers count what they accepted and served and their own CPU
// (process.cpuUsage), the primary its own: per worker, connections, requests, req/s and CPU per
// request, and the busiest/least busy ratio (issue 16's target: <= 1.2 over a 60 s keep-alive load).
//
// The three clusters run side by side (idle while another is loaded) and the cases alternate
// which policy goes first, so a noisy neighbour on these shared 2-core machines weighs on all.
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runAutocannon, startClusterLoad } from './cluster-load.js'
import { round as roundTo, startServer, withSession } from './common.js'

const appPath = path.join(path.dirname(fileURLToPath(import.meta.url)), 'cluster-app.js')
export const target = 1.2
const policies = ['rr', 'shared', 'least']
const policyName = {
  rr: 'round-robin (SCHED_RR)',
  shared: 'shared handle (SCHED_NONE)',
  least: 'fewest open connections (handoff)',
}
const shortName = { rr: 'round-robin', shared: 'shared handle', least: 'fewest open connections' }

const full = { rounds: 1, keepAliveSeconds: 60, newSeconds: 15, connections: [16, 64], newConcurrency: 16 }
const quick = { rounds: 1, keepAliveSeconds: 1, newSeconds: 0.5, connections: [16, 64], newConcurrency: 8 }

/**
 * @param {{ quick?: boolean, duration?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.duration) settings.keepAliveSeconds = opts.duration
  if (opts.rounds) settings.rounds = opts.rounds
  const progress = opts.progress ?? (() => {})
  return withSession(opts.signal, async (session) => {
    const servers = {}
    for (const policy of policies) {
      servers[policy] = await startServer(session, `cluster ${policy}`, [
        appPath,
        '--workers',
        '2',
        '--policy',
        policy,
        '--app',
        'http',
      ])
    }
    const cases = [
      ...settings.connections.map((c) => ({
        name: `${c} keep-alive connections`,
        kind: 'keep-alive',
        connections: c,
        seconds: settings.keepAliveSeconds,
      })),
      {
        name: `new connection per request, ${settings.newConcurrency} loops`,
        kind: 'new',
        connections: settings.newConcurrency,
        seconds: settings.newSeconds,
      },
    ]
    const table = []
    /** results[case][policy]: one entry per round */
    const results = {}
    for (let round = 1; round <= settings.rounds; round++) {
      for (const [i, c] of cases.entries()) {
        const order = (i + round) % 2 === 1 ? policies : [...policies].reverse()
        for (const policy of order) {
          opts.signal?.throwIfAborted()
          progress(`round ${round}/${settings.rounds}, ${policyName[policy]}: ${c.name}, ${c.seconds} s`)
          const r = await measure(session, servers[policy], c)
          results[c.name] ??= Object.fromEntries(policies.map((p) => [p, []]))
          results[c.name][policy].push(r)
          for (const [w, s] of r.workers.entries()) {
            table.push({
              section: 'per worker',
              load: c.name,
              policy: policyName[policy],
              round,
              worker: w + 1,
              connections: s.connections,
              requests: s.requests,
              'req/s': roundTo(s.requests / r.seconds, 0),
              'cpu us/req': s.requests > 0 ? roundTo(s.cpuMicros / s.requests, 1) : undefined,
            })
          }
          table.push({
            section: 'balance',
            load: c.name,
            policy: policyName[policy],
            round,
            'busiest/least requests': r.requestRatio,
            'busiest/least connections': r.connectionRatio,
            'connections per worker': r.workers.map((w) => w.connections).join('/'),
            'req/s': r.rps,
            'worker cpu us/req': r.workerCpuPerRequest,
            'primary cpu us/req': r.primaryCpuPerRequest,
            'client failures': r.clientFailures,
            'load avg': r.loadavg,
          })
        }
      }
    }
    const { notes, summary } = verdicts(results, cases, settings, opts.quick)
    await Promise.all(Object.values(servers).map((s) => s.stop()))
    return {
      name: 'cluster-balance',
      table,
      notes,
      summary: { target, settings, medianRatio: summary, results },
    }
  })
}

function verdicts(results, cases, settings, isQuick) {
  const notes = []
  const summary = {}
  for (const c of cases) {
    const r = results[c.name]
    // a worker that served nothing gives an infinite ratio: it must count, so no medianOf (which drops it)
    const median = (policy) => {
      const sorted = r[policy].map((x) => x.requestRatio).sort((a, b) => a - b)
      const mid = sorted.length >> 1
      return sorted.length % 2 === 1 ? sorted[mid] : roundTo((sorted[mid - 1] + sorted[mid]) / 2, 2)
    }
    const medians = Object.fromEntries(policies.map((p) => [p, median(p)]))
    summary[c.name] = medians
    const rounds = (policy) =>
      r[policy]
        .map((x) => `${x.requestRatio} (${x.workers.map((w) => w.connections).join('/')} conn)`)
        .join(', ')
    const best = policies.reduce((a, b) => (medians[b] < medians[a] ? b : a))
    const nodeBetter =
      medians.rr === medians.shared
        ? 'the same'
        : medians.rr < medians.shared
          ? 'round-robin'
          : 'shared handle'
    notes.push(
      `${c.name}: busiest/least busy worker by requests, median of ${r.rr.length} round(s): ` +
        policies.map((p) => `${shortName[p]} ${medians[p]} [${rounds(p)}]`).join(', ') +
        `; of Node's two, balances better: ${nodeBetter}; best: ${shortName[best]}` +
        (c.kind === 'keep-alive'
          ? `; target <= ${target}: ${policies.map((p) => `${shortName[p]} ${judge(medians[p], isQuick)}`).join(', ')}`
          : ''),
    )
  }
  notes.push(
    `Keep-alive loads: autocannon, ${settings.keepAliveSeconds} s, connections opened at the start and kept. ` +
      `New connections: ${settings.newConcurrency} loops of one request each on a fresh connection, ` +
      `${settings.newSeconds} s. Counts are the workers' own; cpu from process.cpuUsage of each worker ` +
      '(primary: the cluster primary, which accepts and passes every connection under round-robin and ' +
      'under the handoff to the worker with the fewest open connections). ' +
      `${settings.rounds} round(s), each case alternating which policy goes first.`,
  )
  return { notes, summary }
}

const judge = (ratio, isQuick) =>
  isQuick ? 'quick run, too short to judge' : ratio <= target ? 'met' : 'NOT met'

/** Stats snapshot: SIGUSR2 to the primary, which prints one { msg: 'stats' } line. */
function snapshot(server) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no stats from ${server.pid}\n${server.describe()}`)),
      5000,
    )
    let done = false
    server.onRecord((record) => {
      if (done || record.msg !== 'stats') return
      done = true
      clearTimeout(timer)
      resolve(record)
    })
    process.kill(server.pid, 'SIGUSR2')
  })
}

async function measure(session, server, c) {
  const url = `http://127.0.0.1:${server.port}/`
  const loadavg = roundTo(os.loadavg()[0], 2)
  const before = await snapshot(server)
  const t0 = performance.now()
  let clientFailures
  if (c.kind === 'keep-alive') {
    const result = await runAutocannon(session, { url, connections: c.connections, seconds: c.seconds })
    clientFailures = result.errors + result.timeouts + result.non2xx
  } else {
    const load = startClusterLoad(session, { url, concurrency: c.connections, keepAlive: false })
    await new Promise((resolve) => setTimeout(resolve, c.seconds * 1000))
    await load.finish()
    clientFailures = load.failed
  }
  const seconds = (performance.now() - t0) / 1000
  const after = await snapshot(server)
  const workers = after.workers.map((a) => {
    const b = before.workers.find((w) => w.pid === a.pid)
    return {
      pid: a.pid,
      connections: a.connections - b.connections,
      requests: a.requests - b.requests,
      cpuMicros: a.cpu.user + a.cpu.system - b.cpu.user - b.cpu.system,
    }
  })
  const requests = workers.reduce((n, w) => n + w.requests, 0)
  const ratioOf = (key) => {
    const values = workers.map((w) => w[key])
    return Math.min(...values) > 0
      ? roundTo(Math.max(...values) / Math.min(...values), 2)
      : Number.POSITIVE_INFINITY
  }
  const primaryMicros =
    after.primaryCpu.user + after.primaryCpu.system - before.primaryCpu.user - before.primaryCpu.system
  return {
    seconds,
    loadavg,
    workers,
    requests,
    rps: roundTo(requests / seconds, 0),
    requestRatio: ratioOf('requests'),
    connectionRatio: ratioOf('connections'),
    workerCpuPerRequest:
      requests > 0 ? roundTo(workers.reduce((n, w) => n + w.cpuMicros, 0) / requests, 1) : undefined,
    primaryCpuPerRequest: requests > 0 ? roundTo(primaryMicros / requests, 1) : undefined,
    clientFailures,
  }
}
