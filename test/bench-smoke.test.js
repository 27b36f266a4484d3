// Smoke test of the benchmark runner: `node bench/run.js dispatch --quick` must finish, print the
// ratio line and record numeric figures. Timings and ratios are not asserted: on shared cores they
// say nothing about correctness.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { test } from 'node:test'
import { projectRoot } from './helpers.js'

const timeoutMs = 120_000

function runBench(args, ms = timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(projectRoot, 'bench', 'run.js'), ...args], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    // SIGINT first so the runner stops the servers it started; SIGKILL only if it does not
    let killer
    const timer = setTimeout(() => {
      child.kill('SIGINT')
      killer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      reject(new Error(`bench did not finish within ${ms} ms\n${stdout}\n${stderr}`))
    }, ms)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      clearTimeout(killer)
      resolve({ code, signal, stdout, stderr })
    })
  })
}

test('bench/run.js dispatch --quick runs and records figures', { timeout: timeoutMs + 30_000 }, async () => {
  const { code, signal, stdout, stderr } = await runBench(['dispatch', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running dispatch/)
  assert.match(stdout, /Nyala\/bare ratio, 1 module: median \S+ over \d+ round/)
  assert.match(stdout, /Nyala\/bare ratio, 100 modules: median \S+ over \d+ round/)

  const report = JSON.parse(await readFile(path.join(projectRoot, 'bench', 'results', 'latest.json'), 'utf8'))
  const dispatch = report.benchmarks?.dispatch
  assert.ok(dispatch, 'latest.json has a dispatch entry')
  assert.equal(dispatch.name, 'dispatch')
  assert.equal(dispatch.error, undefined)

  const { ratio, startupMs } = dispatch.summary
  for (const name of ['1 module', '100 modules']) {
    assert.equal(typeof ratio[name].median, 'number', `median ratio for ${name}`)
    assert.ok(ratio[name].rounds.length > 0)
    for (const r of ratio[name].rounds) assert.equal(typeof r, 'number')
  }
  for (const n of ['1', '10', '100']) assert.equal(typeof startupMs[n], 'number', `start-up for ${n}`)
  // the wrk case runs where wrk is installed, and says it was skipped where it is not
  const wrk = ratio['1 module, wrk']
  if (wrk) assert.equal(typeof wrk.median, 'number', 'median ratio for the wrk case')
  else
    assert.ok(
      dispatch.notes.some((n) => /wrk is not installed/.test(n)),
      'the wrk case says why it is missing',
    )

  const rounds = dispatch.table.filter((row) => row.section === 'throughput' && typeof row.round === 'number')
  assert.ok(rounds.length >= 2, 'one round per case at least')
  for (const row of rounds) {
    for (const key of ['nyala req/s', 'bare req/s', 'ratio']) assert.equal(typeof row[key], 'number', key)
    assert.ok(row['nyala req/s'] > 0 && row['bare req/s'] > 0, 'both servers answered')
  }
})

test('bench/run.js reload --quick runs both reload benchmarks and records figures', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['reload', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running reload-under-load \(quick\)/)
  assert.match(stdout, /bench: running reload-memory \(quick\)/)
  assert.match(stdout, /failed requests: \d+ of \d+ \(target 0\)/)
  assert.match(stdout, /trigger -> first response from the new generation: median \S+ ms/)
  assert.match(stdout, /heap after GC grows \S+ MB per 100 reloads/)

  const report = JSON.parse(await readFile(path.join(projectRoot, 'bench', 'results', 'latest.json'), 'utf8'))
  assert.equal(report.benchmarks.dispatch, undefined, 'only the reload group ran')
  const load = report.benchmarks['reload-under-load']
  assert.ok(load, 'latest.json has a reload-under-load entry')
  assert.equal(load.error, undefined)
  const s = load.summary
  // behaviour, not timing: no request failed, no reload failed, the triggers reloaded
  assert.equal(s.failedRequests, 0)
  assert.ok(s.requests > 0)
  assert.equal(s.reloads.failed, 0)
  assert.ok(s.triggers > 0 && s.reloads.swapped > 0)
  for (const key of ['quiet', 'reloading']) {
    assert.equal(typeof s.p50Ms[key], 'number', `p50 ${key}`)
    assert.equal(typeof s.p99Ms[key], 'number', `p99 ${key}`)
  }
  assert.equal(typeof s.p99Ratio, 'number')
  assert.equal(typeof s.noiseRatio, 'number')
  assert.match(stdout, /noise floor: p99 of one half of the quiet windows over the other half: \S+/)
  // the same ratio against a bare node:http server: what the instrument shows for nothing
  assert.equal(typeof s.bareP99Ratio, 'number')
  // the reloading windows' slow requests by time since the last trigger
  assert.deepEqual(
    s.slowAfterTrigger.map((b) => [b.from, b.to]),
    [
      [0, 20],
      [20, 160],
      [160, 500],
    ],
  )
  assert.ok(s.slowAfterTrigger.every((b) => b.slow <= b.requests))
  assert.ok(s.slowAfterTrigger.some((b) => b.requests > 0))
  // the calibration (Linux: the host's CPU per reload from /proc): a bare server spending that
  // much CPU per reload, then 3 ms, in short slices at the same moments
  if (s.mainThreadCpuMsPerReload !== null) {
    assert.equal(s.calibration.length, 2)
    assert.ok(Math.abs(s.calibration[0].perReloadMs - s.mainThreadCpuMsPerReload) <= 0.06)
    assert.equal(s.calibration[1].perReloadMs, 3)
    assert.ok(
      s.calibration.every((c) => c.sliceMs === 0.5 && typeof c.p99Ratio === 'number' && c.p99Ratio > 0),
    )
    assert.match(
      stdout,
      /calibration: a bare server whose thread spends [\d.]+ ms of CPU per reload in 0\.5 ms slices/,
    )
  }
  assert.match(
    stdout,
    /instrument floor: the same ratio against a bare node:http server with no host and no reload: \d/,
  )
  assert.ok(s.triggerToNewMs.samples.length > 0)
  for (const v of s.triggerToNewMs.samples) assert.equal(typeof v, 'number')
  if (process.platform === 'linux') assert.equal(typeof s.mainThreadCpuMsPerReload, 'number')
  assert.match(stdout, /host main-thread CPU per reload: /)

  const memory = report.benchmarks['reload-memory']
  assert.ok(memory, 'latest.json has a reload-memory entry')
  assert.equal(memory.error, undefined)
  assert.equal(memory.summary.failures, 0)
  const points = memory.summary.points
  assert.deepEqual(
    points.map((p) => p.reloads),
    [0, 5, 10, 15, 20],
  )
  for (const p of points) for (const key of ['heapUsed', 'rss']) assert.ok(p[key] > 0, key)
})

test('bench/run.js upgrade --quick runs and records figures', { timeout: timeoutMs + 30_000 }, async () => {
  const { code, signal, stdout, stderr } = await runBench(['upgrade', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running upgrade/)
  assert.match(
    stdout,
    /Failed requests: Nyala \d+ \(\d+ refused connections\) over \d+ upgrade\(s\), node --watch \d+/,
  )
  assert.match(stdout, /p99 around upgrades \/ quiet: \S+/)
  assert.match(stdout, /Handover, SIGQUIT to successor accepting: median \S+ ms/)

  const report = JSON.parse(await readFile(path.join(projectRoot, 'bench', 'results', 'latest.json'), 'utf8'))
  const upgrade = report.benchmarks?.upgrade
  assert.ok(upgrade, 'latest.json has an upgrade entry')
  assert.equal(upgrade.error, undefined)
  const { nyala, watch, p99 } = upgrade.summary
  for (const side of [nyala, watch]) {
    for (const key of ['requests', 'failed', 'refused']) assert.equal(typeof side[key], 'number', key)
    assert.ok(side.requests > 0, 'the load ran')
  }
  assert.ok(nyala.upgrades > 0, 'at least one upgrade ran')
  assert.equal(typeof p99.quiet, 'number')
})

const readReport = async () =>
  JSON.parse(await readFile(path.join(projectRoot, 'bench', 'results', 'latest.json'), 'utf8'))

test('bench/run.js peers --quick runs every contender and draws its chart', {
  timeout: timeoutMs + 30_000,
}, async () => {
  // one change per contender in 0.25 s windows; the memory phase keeps its quick 10 changes
  // (the process upgrade: its one change only)
  const { code, signal, stdout, stderr } = await runBench([
    'peers',
    '--quick',
    '--duration',
    '0.25',
    '--rounds',
    '1',
  ])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running peers/)
  assert.match(stdout, /peers - during changes/)

  const peers = (await readReport()).benchmarks?.peers
  assert.ok(peers, 'latest.json has a peers entry')
  assert.equal(peers.error, undefined)
  const { contenders } = peers.summary
  for (const key of ['nyala-overlap', 'nyala-blocking', 'node-watch', 'restartable', 'esm-cache-bust']) {
    const c = contenders[key]
    assert.ok(c, key)
    assert.equal(typeof c.failed, 'number', `${key} failed`)
    assert.ok(c.quiet.requests > 0 && c.change.requests > 0, `${key} answered in both windows`)
    assert.equal(typeof c.heapAfter, 'number', `${key} heap`)
    assert.equal(c.totalChanges, 10, `${key} changes`)
  }
  // Nyala must never fail a request, not even in a smoke run
  assert.equal(contenders['nyala-overlap'].failed, 0)
  assert.equal(contenders['nyala-blocking'].failed, 0)
  // a process upgrade per change: the quick run makes one (a new process, a socket handover)
  const upgrade = contenders['nyala-upgrade']
  assert.equal(upgrade.unavailable, undefined)
  assert.ok(upgrade.quiet.requests > 0 && upgrade.change.requests > 0, 'upgrade answered in both windows')
  assert.equal(upgrade.totalChanges, 1)
  assert.equal(upgrade.memoryPhase.notSeen, 0, 'the upgraded process serves the new code')
  assert.equal(typeof upgrade.heapAfter, 'number')

  assert.equal(peers.charts.length, 6)
  for (const chart of peers.charts) {
    const svg = await readFile(chart.file, 'utf8')
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/)
    assert.match(svg, /<polyline /, `${chart.file} has a latency line`)
  }
  const markdown = await readFile(path.join(projectRoot, 'bench', 'results', 'BENCHMARKS.md'), 'utf8')
  assert.match(markdown, /## peers/)
  assert.match(markdown, /!\[Nyala reload \(overlap\)\]\(charts\/peers-nyala-overlap\.svg\)/)
})

test('bench/run.js scale --quick runs and records figures', { timeout: timeoutMs + 30_000 }, async () => {
  const { code, signal, stdout, stderr } = await runBench([
    'scale',
    '--quick',
    '--rounds',
    '1',
    '--duration',
    '0.2',
  ])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running scale/)
  assert.match(stdout, /Leaf reload 50\/10 modules: \S+/)
  assert.match(stdout, /Idle CPU with 51 bundles watched/)
  for (const trigger of ['a \\.tmp', 'a staged file', 'the touch file']) {
    assert.match(stdout, new RegExp(`Leaf reload by ${trigger}, 50/10 modules: \\S+`))
  }

  const scale = (await readReport()).benchmarks?.scale
  assert.ok(scale, 'latest.json has a scale entry')
  assert.equal(scale.error, undefined)
  assert.equal(typeof scale.summary.leafRatio, 'number')
  assert.deepEqual(
    scale.summary.hosts.map((h) => h.modules),
    [0, 10, 50],
  )
  for (const host of scale.summary.hosts.filter((h) => h.modules > 0)) {
    assert.equal(typeof host.startupMs, 'number')
    assert.equal(typeof host.heapPerModuleKB, 'number')
    assert.equal(host.leaf.affected, 1)
    assert.equal(host.hub.affected, host.hub.dependents + 1)
    assert.equal(typeof host.idleCpuSeconds, 'number')
    assert.deepEqual(Object.keys(host.fileTriggers).sort(), ['staging', 'tmpfile', 'touch'])
    for (const figures of Object.values(host.fileTriggers)) assert.equal(typeof figures.wallMs, 'number')
  }
  assert.deepEqual(Object.keys(scale.summary.fileTriggerRatios).sort(), ['staging', 'tmpfile', 'touch'])
})

test('bench/run.js reload-big-bundle --quick reloads a generated 3,000-file bundle and records figures', {
  timeout: timeoutMs + 30_000,
}, async () => {
  // --quick packs generated files instead of installing npm packages: the smoke test needs no network
  const { code, signal, stdout, stderr } = await runBench(['reload-big-bundle', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: reload-big-bundle: generating a synthetic bundle/)
  assert.match(stdout, /unrelated module during reloads: max \S+ ms/)
  assert.match(stdout, /reload of big: host-side median \S+ ms/)
  // the second configuration: the big module with isolation=thread
  assert.match(stdout, /\[isolation=thread\] unrelated module during reloads: max \S+ ms/)
  assert.match(stdout, /\[isolation=thread\] reload of big: host-side median \S+ ms/)

  const big = (await readReport()).benchmarks?.['reload-big-bundle']
  assert.ok(big, 'latest.json has a reload-big-bundle entry')
  assert.equal(big.error, undefined)
  const s = big.summary
  assert.ok(s.files >= 3000, `${s.files} files`)
  assert.equal(s.failedRequests, 0)
  assert.equal(s.reloads, 3)
  assert.ok(s.quiet.requests > 0 && s.reloading.requests > 0, 'the unrelated module answered in both windows')
  for (const v of [...s.hostMs.samples, ...s.triggerToNewMs.samples]) assert.equal(typeof v, 'number')
  if (process.platform === 'linux') assert.equal(typeof s.mainThreadCpuMsPerReload, 'number')
  const isolated = s.thread
  assert.ok(isolated, 'the isolation=thread configuration has figures')
  assert.equal(isolated.failedRequests, 0)
  assert.equal(isolated.reloads, 3)
  assert.ok(isolated.quiet.requests > 0 && isolated.reloading.requests > 0)
  for (const v of [...isolated.hostMs.samples, ...isolated.triggerToNewMs.samples])
    assert.equal(typeof v, 'number')
})

test('bench/run.js transform --quick measures cold, ahead, warm and CommonJS loads', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['transform', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /bench: running transform/)
  assert.match(stdout, /warm: unchanged files \(cache\)/)
  const transform = (await readReport()).benchmarks?.transform
  assert.ok(transform, 'latest.json has a transform entry')
  assert.equal(transform.error, undefined)
  // the module's own TypeScript files are transformed on every cold load
  assert.ok(transform.summary.files >= 6, `files ${transform.summary.files}`)
  for (const key of ['coldMs', 'warmMs', 'aheadBlockMs', 'cjsMs']) {
    assert.equal(typeof transform.summary[key], 'number', key)
  }
})

test('bench/run.js signature console --quick runs both and records figures', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['signature', 'console', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  const report = (await readReport()).benchmarks
  const sig = report?.signature
  assert.ok(sig && sig.error === undefined, `signature entry: ${sig?.error}`)
  assert.ok(sig.summary.plainMs > 0 && sig.summary.verifiedMs > 0)
  const page = report?.console
  assert.ok(page && page.error === undefined, `console entry: ${page?.error}`)
  for (const n of page.summary.settings.sizes) {
    assert.ok(page.summary.results[n].coldMs > 0, `render at ${n}`)
    assert.ok(page.summary.results[n].cachedMs > 0, `cached render at ${n}`)
    assert.ok(page.summary.results[n].staticMs > 0, `static baseline at ${n}`)
    assert.ok(page.summary.results[n].floorMs > 0, `floor at ${n}`)
    // the first screen alone, the least a page showing it can cost
    assert.ok(page.summary.results[n].minimalMs > 0, `first screen alone at ${n}`)
    assert.equal(
      typeof page.summary.results[n].minimalOverFloorMs,
      'number',
      `first screen over floor at ${n}`,
    )
    // the page minus the floor's visit of the same round (may be negative in a noisy round)
    assert.equal(typeof page.summary.results[n].coldOverFloorMs, 'number', `cold over floor at ${n}`)
    assert.equal(typeof page.summary.results[n].phoneOverFloorMs, 'number', `phone over floor at ${n}`)
    // the first screen (checked in the bench: every row on screen painted), on a phone too, and
    // the first paint with every row in the document beside it
    assert.ok(page.summary.results[n].phoneMs > 0, `phone render at ${n}`)
    assert.ok(page.summary.results[n].rowsShown >= 1, `rows on screen at ${n}`)
    assert.ok(
      page.summary.results[n].coldStrictMs >= page.summary.results[n].coldAllRowsMs,
      `all rows at ${n}`,
    )
  }
})

test('bench/run.js reload-fsync --quick reloads with and without fsync and records figures', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['reload-fsync', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /1 KB: fsync on\/off ratio of trigger->new \S+/)
  assert.match(stdout, /1 MB: fsync on\/off ratio of trigger->new \S+/)

  const fsync = (await readReport()).benchmarks?.['reload-fsync']
  assert.ok(fsync, 'latest.json has a reload-fsync entry')
  assert.equal(fsync.error, undefined)
  for (const size of ['1 KB', '1 MB']) {
    const s = fsync.summary[size]
    assert.equal(typeof s.ratio, 'number', `ratio for ${size}`)
    for (const side of ['on', 'off']) {
      assert.equal(s.samples[side].length, 2, `${size}, fsync ${side}: two measured reloads`)
      assert.equal(typeof s[side].hostMs, 'number')
    }
  }
})

test('bench/run.js reload-kitchen-sink --quick reloads the all-features module under load and records figures', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['reload-kitchen-sink', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /failed requests: \d+ of \d+ \(target 0\)/)
  assert.match(stdout, /heap after GC at reload 10 \S+ MB, at reload 10 \S+ MB/)

  const sink = (await readReport()).benchmarks?.['reload-kitchen-sink']
  assert.ok(sink, 'latest.json has a reload-kitchen-sink entry')
  assert.equal(sink.error, undefined)
  const s = sink.summary
  // behaviour, not timing: nothing failed, each content has one directory, the addon is mapped once
  assert.ok(s.requests > 0, 'the load ran')
  assert.equal(s.failedRequests, 0)
  assert.equal(s.failedReloads, 0)
  assert.ok(s.sockets.opened > 0)
  assert.equal(s.sockets.failed, 0)
  assert.ok(s.maxDirs >= 1 && s.maxDirs <= 2, `at most 2 content directories, saw ${s.maxDirs}`)
  assert.equal(s.endDirs, 1)
  assert.equal(s.endScratch, 0)
  assert.deepEqual(s.addonMappings, [1, 1])
  for (const p of s.points) assert.ok(p.heapUsed > 0)
})

test('bench/run.js cluster-balance --quick measures round-robin and the shared handle', {
  timeout: timeoutMs + 30_000,
}, async () => {
  const { code, signal, stdout, stderr } = await runBench(['cluster-balance', '--quick'])
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  assert.match(stdout, /cluster-balance - per worker/)
  assert.match(stdout, /cluster-balance - balance/)
  for (const c of [16, 64]) {
    assert.match(
      stdout,
      new RegExp(
        `${c} keep-alive connections: busiest/least busy worker by requests, median of \\d+ round\\(s\\): round-robin \\S+ .*shared handle \\S+ .*fewest open connections \\S+`,
      ),
    )
  }

  const balance = (await readReport()).benchmarks?.['cluster-balance']
  assert.ok(balance, 'latest.json has a cluster-balance entry')
  assert.equal(balance.error, undefined)
  const { results } = balance.summary
  for (const [name, byPolicy] of Object.entries(results)) {
    const keepAlive = /^(\d+) keep-alive/.exec(name)
    for (const policy of ['rr', 'shared', 'least']) {
      assert.equal(byPolicy[policy].length, 1, `${name}, ${policy}: one round`)
      const r = byPolicy[policy][0]
      assert.equal(r.workers.length, 2, `${name}, ${policy}: two workers`)
      assert.ok(r.requests > 0, `${name}, ${policy}: requests served`)
      const accepted = r.workers.reduce((n, w) => n + w.connections, 0)
      // every connection the client opened was accepted by one of the two workers
      if (keepAlive) assert.ok(accepted >= Number(keepAlive[1]), `${name}, ${policy}: ${accepted} accepted`)
      assert.equal(typeof r.workerCpuPerRequest, 'number')
    }
    for (const policy of ['rr', 'shared', 'least']) {
      const ratio = balance.summary.medianRatio[name][policy]
      assert.ok(ratio === null || ratio >= 1, `${name}, ${policy}: ratio ${ratio}`)
    }
  }
})

/** Live processes (not zombies) whose command line names `text`: something left behind. */
async function processesNaming(text) {
  const found = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8')
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8')
      if (cmdline.includes(text) && !/^Z/.test(stat.slice(stat.lastIndexOf(')') + 2)))
        found.push(Number(entry))
    } catch {
      // gone
    }
  }
  return found
}

/** Whether `pid` no longer runs pm2 or the bench app: gone, a zombie, or (pids wrap) another program. */
async function gone(pid) {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    const ours = cmdline.startsWith('PM2 ') || cmdline.includes('cluster-app.js')
    return !ours || /^Z/.test(stat.slice(stat.lastIndexOf(')') + 2))
  } catch {
    return true
  }
}

test('bench/run.js cluster --quick measures Node cluster, pm2 and Nyala and leaves no pm2 behind', {
  timeout: 4 * timeoutMs,
}, async () => {
  // pm2 reloads its workers one at a time and takes seconds per reload on a busy machine
  const { code, signal, stdout, stderr } = await runBench(['cluster', '--quick'], 3 * timeoutMs)
  assert.equal(code, 0, `exit ${code ?? signal}\n${stdout}\n${stderr}`)
  for (const table of ['throughput', 'reloads under load', 'kill -9 of one worker']) {
    assert.match(stdout, new RegExp(`cluster - ${table}`))
  }
  assert.match(stdout, /Reloads, pm2 cluster, 2 instances: \d+ failed requests of \d+/)
  assert.match(stdout, /More cores: 1 -> 2 workers gave x\S+/)

  const cluster = (await readReport()).benchmarks?.cluster
  assert.ok(cluster, 'latest.json has a cluster entry')
  assert.equal(cluster.error, undefined)
  const s = cluster.summary
  for (const key of ['node-1', 'node-2', 'pm2-1', 'pm2-2', 'nyala-1']) {
    assert.ok(s.throughput[key].rps > 0, `${key} served`)
    assert.equal(typeof s.throughput[key].serverCpuPerReq, 'number', `${key} cpu per request`)
  }
  // Nyala with workers: measured where this build has `--workers`, said to be missing where not
  const workers = s.throughput['nyala-2']
  if (workers.unavailable) {
    assert.equal(workers.unavailable, 'nyala --workers: not available in this build')
    assert.match(stdout, /nyala --workers: not available in this build/)
  } else assert.ok(workers.rps > 0, 'nyala --workers 2 served')

  const pm2Reload = s.reloads.find((r) => r.label === 'pm2 cluster, 2 instances')
  assert.equal(pm2Reload.reloads, 1)
  assert.equal(pm2Reload.failedReloads, 0)
  assert.ok(pm2Reload.requests > 0)
  for (const r of s.reloads.filter((r) => r.label.startsWith('Nyala') && !r.unavailable)) {
    assert.equal(r.failedReloads, 0, `${r.label}: reloads`)
    assert.ok(r.requests > 0, `${r.label}: the load ran`)
  }
  // one process reloads in place: not one request may fail. With workers the bench reports the
  // failures (new connections handed to a worker can be reset, reload or not: issue 16's
  // e2e tests own that verdict)
  const single = s.reloads.find((r) => r.label === 'Nyala, 1 process')
  assert.equal(single.failed, 0, `Nyala, 1 process: failed requests (${JSON.stringify(single.kinds)})`)
  const pm2Kill = s.kills.find((k) => k.label === 'pm2 cluster, 2 instances')
  assert.equal(pm2Kill.kills, 1)
  assert.equal(pm2Kill.notReplaced, 0, 'pm2 replaced the killed worker')
  const nyalaKill = s.kills.find((k) => k.label === 'Nyala, --workers 2')
  if (!nyalaKill.unavailable) assert.equal(nyalaKill.notReplaced, 0, 'Nyala replaced the killed worker')

  assert.equal(s.pm2Left, 0, 'pm2 kill stopped the daemon and its workers')
  // the daemon names its PM2_HOME in its title; every pid pm2 reported must be gone
  assert.deepEqual(await processesNaming(s.pm2Home), [], 'no pm2 daemon of the bench is left')
  assert.ok(s.pm2Pids.length >= 4, `pm2 reported its daemon and workers: ${s.pm2Pids}`)
  for (const pid of s.pm2Pids) assert.ok(await gone(pid), `pm2 process ${pid} is gone`)
  assert.deepEqual(await processesNaming(s.workDir), [], 'no Nyala host (or successor) of the bench is left')
})
