// Worker aggregation of metrics (issue 16, part 5): the supervisor merges each worker's
// `registry.getMetricsAsJSON()` into one exposition where every worker's series carries
// `worker="<id>"`. Real registries (the host's own Metrics, with Node's default metrics) holding
// real counts from RequestStats; the merged text is parsed back.
import assert from 'node:assert/strict'
import test from 'node:test'
import { Metrics } from '../dist/http/metrics.js'
import { mergeWorkerMetrics } from '../dist/http/metrics-merge.js'
import { ReloadEvents } from '../dist/reload/reload-events.js'
import { RequestStats } from '../dist/runtime/request-stats.js'

/** A module record's part the metrics read, with real request statistics. */
function moduleOf(name) {
  return { name, state: 'running', crashes: 0, generation: undefined, stats: new RequestStats() }
}

/** A worker's metrics: `requests` is [module, ms, status] for each request it served. */
function worker(requests, reloads = 0) {
  const events = new ReloadEvents()
  const modules = new Map()
  for (const [name, ms, status] of requests) {
    if (!modules.has(name)) modules.set(name, moduleOf(name))
    modules.get(name).stats.record(ms, 1_000, status)
  }
  const metrics = new Metrics(events, () => modules.values())
  for (let i = 0; i < reloads; i++)
    events.emit({ id: i + 1, phase: 'swapped', trigger: 'test', modules: [], ms: 40 })
  return metrics
}

/**
 * Parses Prometheus text exposition: { help: name -> text, type: name -> type, samples: [{ name,
 * labels, value }] }, checking the format as it goes (HELP and TYPE once and before the samples,
 * every sample's line well formed, the samples of one metric together).
 */
function parse(text) {
  const help = new Map()
  const type = new Map()
  const samples = []
  const closed = new Set()
  let current
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
    if (meta) {
      const into = meta[1] === 'HELP' ? help : type
      assert.ok(!into.has(meta[2]), `${meta[1]} of ${meta[2]} once`)
      into.set(meta[2], meta[3])
      if (current !== meta[2]) {
        if (current) closed.add(current)
        assert.ok(!closed.has(meta[2]), `${meta[2]} in one block`)
        current = meta[2]
      }
      continue
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(m, `a sample line: ${line}`)
    const labels = {}
    const rest = (m[2] ?? '').replace(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g, (_, k, v) => {
      assert.ok(!(k in labels), `label ${k} once in ${line}`)
      labels[k] = v
      return ''
    })
    assert.equal(rest, '', `labels of ${line}`)
    const ofCurrent = ['', '_bucket', '_sum', '_count'].some((suffix) => m[1] === `${current}${suffix}`)
    assert.ok(ofCurrent, `${m[1]} under its own TYPE, not ${current}'s`)
    // prom-client prints NaN as "Nan" (a monitor with no samples yet); Prometheus reads both
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3])
    assert.ok(!Number.isNaN(value) || /^nan$/i.test(m[3]), `a value: ${line}`)
    samples.push({ name: m[1], labels, value })
  }
  return { help, type, samples }
}

/** The value of the one sample named `name` with exactly `labels`. */
function sampleOf(parsed, name, labels) {
  const found = parsed.samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  assert.equal(found.length, 1, `one ${name} ${JSON.stringify(labels)}`)
  return found[0].value
}

test('each worker keeps its own series under a worker label, each metric printed once', async () => {
  const one = worker([
    ['shop', 2, 200],
    ['shop', 3, 200],
    ['shop', 900, 200],
    ['auth', 1, 401],
  ])
  const two = worker([
    ['shop', 5, 200],
    ['shop', 20, 500],
    ['shop', 30, 503],
    ['shop', 4, 0],
  ])
  const supervisor = worker([], 2)
  const inputs = [
    { worker: '1', metrics: await one.registry.getMetricsAsJSON() },
    { worker: '2', metrics: await two.registry.getMetricsAsJSON() },
    { worker: undefined, metrics: await supervisor.registry.getMetricsAsJSON() },
  ]
  const before = JSON.stringify(inputs)
  const text = await mergeWorkerMetrics(inputs)
  assert.equal(JSON.stringify(inputs), before, 'the inputs are not changed')
  const parsed = parse(text)

  assert.equal(parsed.type.get('nyala_requests_total'), 'counter')
  assert.equal(parsed.type.get('nyala_request_duration_seconds'), 'histogram')
  const requests = (labels) => sampleOf(parsed, 'nyala_requests_total', labels)
  assert.equal(requests({ module: 'shop', status_class: '2xx', worker: '1' }), 3)
  assert.equal(requests({ module: 'auth', status_class: '4xx', worker: '1' }), 1)
  assert.equal(requests({ module: 'shop', status_class: '2xx', worker: '2' }), 1)
  assert.equal(requests({ module: 'shop', status_class: '5xx', worker: '2' }), 2)
  assert.equal(requests({ module: 'shop', status_class: 'aborted', worker: '2' }), 1)
  // a module worker 2 never served has no series of worker 2
  assert.ok(!parsed.samples.some((s) => s.labels.module === 'auth' && s.labels.worker === '2'))

  const histogram = (suffix, labels) => sampleOf(parsed, `nyala_request_duration_seconds_${suffix}`, labels)
  assert.equal(histogram('count', { module: 'shop', worker: '1' }), 3)
  assert.equal(histogram('count', { module: 'shop', worker: '2' }), 4)
  assert.equal(histogram('bucket', { module: 'shop', worker: '1', le: '+Inf' }), 3)
  // 2 and 3 ms are under 4 ms, 900 ms is not
  assert.equal(histogram('bucket', { module: 'shop', worker: '1', le: '0.004' }), 2)
  assert.equal(histogram('bucket', { module: 'shop', worker: '1', le: '1.024' }), 3)
  assert.ok(Math.abs(histogram('sum', { module: 'shop', worker: '1' }) - 0.905) < 1e-9)

  // the supervisor's own series stay unlabelled; no worker has a reload
  assert.equal(sampleOf(parsed, 'nyala_reloads_total', { result: 'reloaded' }), 2)
  assert.equal(sampleOf(parsed, 'nyala_reloads_total', { result: 'reloaded', worker: '1' }), 0)
  assert.equal(sampleOf(parsed, 'nyala_reload_duration_seconds_count', {}), 2)

  // Node's default metrics of every process, each under its own label
  for (const w of ['1', '2'])
    assert.ok(sampleOf(parsed, 'nyala_process_cpu_user_seconds_total', { worker: w }) >= 0)
  assert.equal(parsed.type.get('nyala_nodejs_eventloop_lag_seconds'), 'gauge')
})

test('merging nothing gives an empty exposition, and one unlabelled part gives its registry text', async () => {
  assert.equal((await mergeWorkerMetrics([])).trim(), '')
  const solo = worker([['shop', 2, 200]])
  const json = await solo.registry.getMetricsAsJSON()
  const parsed = parse(await mergeWorkerMetrics([{ worker: undefined, metrics: json }]))
  assert.equal(sampleOf(parsed, 'nyala_requests_total', { module: 'shop', status_class: '2xx' }), 1)
  assert.ok(!parsed.samples.some((s) => 'worker' in s.labels))
})
