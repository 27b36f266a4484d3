// The per-module figures behind GET /stats and the console (issue 17): a ring of 60 one-second
// slots of latency histograms, read as requests per second and a p99 bounded by its bucket.
import assert from 'node:assert/strict'
import test from 'node:test'
import { RequestStats } from '../dist/runtime/request-stats.js'

test('p99 is the upper bound of the bucket holding the 99th percentile', () => {
  const stats = new RequestStats()
  for (let i = 1; i <= 1000; i++) stats.record(i, 5_000)
  const { p99Ms, requests } = stats.minute(5_500)
  assert.equal(requests, 1000)
  // the 990th of 1..1000 ms is 990 ms; its bucket is at most 2^(1/4) (19%) wider
  assert.ok(p99Ms >= 990 && p99Ms <= 990 * 2 ** 0.25, String(p99Ms))
  assert.equal(new RequestStats().minute(5_000).p99Ms, null)
})

test('requests of a minute or more show as long as they were, not as the top of a short histogram', () => {
  const stats = new RequestStats()
  for (let i = 0; i < 100; i++) stats.record(90_000, 200_000)
  const { p99Ms } = stats.minute(200_500)
  assert.ok(p99Ms >= 90_000 && p99Ms <= 90_000 * 2 ** 0.25, String(p99Ms))
})

test('a second leaves the window 60 seconds later, and a reused slot starts from zero', () => {
  const stats = new RequestStats()
  stats.record(1, 1_000)
  stats.record(1, 1_999)
  assert.deepEqual(stats.minute(60_999).perSecond.slice(0, 1), [2])
  assert.equal(stats.minute(60_999).requests, 2)
  assert.equal(stats.minute(61_000).requests, 0)
  // second 61 takes second 1's slot: it holds only its own request
  stats.record(1, 61_000)
  const minute = stats.minute(61_000)
  assert.equal(minute.requests, 1)
  assert.equal(minute.perSecond.at(-1), 1)
  // the current second is not counted in the rate: it is still filling
  assert.equal(minute.rps, 0)
  assert.equal(stats.minute(62_000).rps, 1 / 59)
})

test('totals count every request by status class and in cumulative-ready duration buckets', async () => {
  const { durationBoundsMs, statusClasses } = await import('../dist/runtime/request-stats.js')
  const stats = new RequestStats()
  // seconds apart, so the ring's reuse of slots does not touch the totals
  stats.record(0.1, 1_000, 200)
  stats.record(3, 2_000, 204)
  stats.record(3, 70_000, 404)
  stats.record(100_000, 140_000, 503)
  stats.record(0.3, 200_000, 0)
  const { byStatus, byDuration, sumMs } = stats.totals()
  assert.deepEqual(Object.fromEntries(statusClasses.map((c, i) => [c, byStatus[i]])), {
    aborted: 1,
    '1xx': 0,
    '2xx': 2,
    '3xx': 0,
    '4xx': 1,
    '5xx': 1,
  })
  assert.equal(byDuration.length, durationBoundsMs.length + 1)
  const at = (ms) => byDuration[durationBoundsMs.indexOf(ms)]
  assert.equal(at(0.25), 1, '0.1 ms: the first bound')
  assert.equal(at(0.5), 1, '0.3 ms')
  assert.equal(at(4), 2, '3 ms, twice')
  assert.equal(byDuration.at(-1), 1, '100 s: past the last bound, 65.5 s')
  assert.equal(
    byDuration.reduce((a, b) => a + b),
    5,
  )
  assert.ok(Math.abs(sumMs - 100_006.4) < 1e-6)
  // every fine bucket maps to the bound at or above its upper edge: no request under a bound
  // lands past it
  for (const ms of [0.2499, 0.2501, 0.9, 1.01, 1000, 65_000, 65_600]) {
    const one = new RequestStats()
    one.record(ms, 1_000, 200)
    const i = one.totals().byDuration.indexOf(1)
    const bound = durationBoundsMs[i] ?? Number.POSITIVE_INFINITY
    assert.ok(ms <= bound, `${ms} ms under ${bound}`)
    assert.ok(i === 0 || ms > durationBoundsMs[i - 1], `${ms} ms over ${durationBoundsMs[i - 1]}`)
  }
})

test('a module without a request for a minute reads as an empty minute, as a computed one would', () => {
  const empty = { perSecond: new Array(60).fill(0), requests: 0, rps: 0, p99Ms: null }
  assert.deepEqual({ ...new RequestStats().minute(0) }, empty)
  const stats = new RequestStats()
  stats.record(5, 10_000)
  // second 10 is still in the minute that ends with second 69, gone from the one ending with 70
  assert.equal(stats.minute(69_999).requests, 1)
  assert.deepEqual({ ...stats.minute(70_000) }, empty)
  const parts = stats.minuteParts(70_000)
  assert.deepEqual([...parts.perSecond], empty.perSecond)
  assert.ok(parts.histogram.length > 0 && parts.histogram.every((n) => n === 0))
  // and counts again from its next request
  stats.record(5, 80_000)
  const minute = stats.minute(80_500)
  assert.equal(minute.requests, 1)
  assert.equal(minute.perSecond.at(-1), 1)
})
