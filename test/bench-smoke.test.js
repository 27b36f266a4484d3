// Smoke test of the benchmark runner: `node bench/run.js dispatch --quick` must finish, print the
// ratio line and record numeric figures. Timings and ratios are not asserted: on shared cores they
// say nothing about correctness.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { test } from 'node:test'
import { projectRoot } from './helpers.js'

const timeoutMs = 120_000

function runBench(args) {
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
      reject(new Error(`bench did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
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

  const rounds = dispatch.table.filter((row) => row.section === 'throughput' && typeof row.round === 'number')
  assert.ok(rounds.length >= 2, 'one round per case at least')
  for (const row of rounds) {
    for (const key of ['nyala req/s', 'bare req/s', 'ratio']) assert.equal(typeof row[key], 'number', key)
    assert.ok(row['nyala req/s'] > 0 && row['bare req/s'] > 0, 'both servers answered')
  }
})

const readReport = async () =>
  JSON.parse(await readFile(path.join(projectRoot, 'bench', 'results', 'latest.json'), 'utf8'))

test('bench/run.js peers --quick runs every contender and draws its chart', {
  timeout: timeoutMs + 30_000,
}, async () => {
  // one change per contender in 0.25 s windows; the memory phase keeps its quick 10 changes
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
  assert.match(stdout, /Nyala process upgrade\s+not available in this build/)

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
  assert.ok(contenders['nyala-upgrade'].unavailable)

  assert.equal(peers.charts.length, 5)
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
  }
})
