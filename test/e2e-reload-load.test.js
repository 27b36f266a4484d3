// A module reloaded 100 times while a bounded client loop keeps requesting it
// over a few keep-alive connections: every response is 200, and the
// generation each connection sees never goes backwards. Half the reloads are
// forced (same content), half load a rewritten bundle. Bounded in time and
// count; nothing asserts a timing.
import assert from 'node:assert/strict'
import { copyFile, rename } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  agentGet,
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  request,
  startHost,
} from './helpers.js'

const reloads = 100
const connections = 4
/** Per connection: a bound on requests, so a runaway loop cannot spin forever. */
const maxRequestsPerConnection = 200_000
const loadDeadlineMs = 150_000

// the handler waits a moment so that requests are in flight across the swaps and drains
const indexOf = (tag) =>
  `module.exports = { async register (app, ctx) {
  app.get('/', async () => {
    await new Promise((resolve) => setTimeout(resolve, 1))
    return { generation: ctx.generation, tag: ${JSON.stringify(tag)} }
  })
} }
`

async function variant(root, tag) {
  const dir = await moduleSource(root, `solo-${tag}`, { files: { 'index.js': indexOf(tag) } })
  return packWithNyala(dir, path.join(root, 'src', `solo-${tag}.zip`))
}

test(`${reloads} reloads under keep-alive load: every response is 200, no connection sees a generation go back`, {
  timeout: 240_000,
}, async (t) => {
  const root = await makeRoot(t)
  await deploy(root, 'solo', { files: { 'index.js': indexOf('v0') } })
  const bundles = [await variant(root, 'a'), await variant(root, 'b')]
  const host = await startHost(t, root)
  const url = host.url('/solo')

  const agents = Array.from({ length: connections }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }))
  t.after(() => {
    for (const agent of agents) agent.destroy()
  })
  const stats = agents.map(() => ({ requests: 0, reused: 0, last: 0, seen: new Set(), problems: [] }))
  let stop = false
  const deadline = Date.now() + loadDeadlineMs
  const loops = agents.map(async (agent, i) => {
    const s = stats[i]
    while (!stop && s.requests < maxRequestsPerConnection && Date.now() < deadline) {
      const res = await agentGet(agent, url)
      s.requests++
      if (res.error || res.status !== 200 || typeof res.body?.generation !== 'number') {
        if (s.problems.length < 20)
          s.problems.push(res.error?.message ?? `${res.status} ${JSON.stringify(res.body)}`)
        continue
      }
      if (res.reused) s.reused++
      const gen = res.body.generation
      if (gen < s.last && s.problems.length < 20) {
        s.problems.push(`connection ${i}: generation ${gen} after ${s.last}`)
      }
      s.last = Math.max(s.last, gen)
      s.seen.add(gen)
    }
  })

  const outcomes = []
  try {
    for (let i = 0; i < reloads; i++) {
      let route = '/modules/solo/reload?force=true'
      if (i % 2 === 1) {
        // a rewritten bundle (whole, by a rename): a content change, no force needed
        const temp = path.join(modulesOf(root), '.solo.zip.partial')
        await copyFile(bundles[(i >> 1) % 2], temp)
        await rename(temp, path.join(modulesOf(root), 'solo.zip'))
        route = '/modules/solo/reload'
      }
      const res = await request(host.admin(route), { method: 'POST', signal: AbortSignal.timeout(30_000) })
      outcomes.push(res)
      assert.equal(res.status, 200, `reload ${i + 1}: ${res.text}`)
      assert.equal(res.body.result, 'reloaded', `reload ${i + 1}: ${res.text}`)
      assert.deepEqual(res.body.generations, { solo: i + 2 }, `reload ${i + 1}`)
    }
  } finally {
    stop = true
    await Promise.all(loops)
  }
  assert.equal(outcomes.length, reloads)

  // after the last swap, every connection (still the same keep-alive socket) sees the last generation
  for (const [i, agent] of agents.entries()) {
    const res = await agentGet(agent, url)
    assert.equal(res.status, 200, res.error?.message)
    assert.equal(res.body.generation, reloads + 1, `connection ${i}`)
  }
  const table = await request(host.admin('/modules/solo'))
  assert.equal(table.body.generation, reloads + 1)
  assert.equal(table.body.lastError, null)

  const problems = stats.flatMap((s) => s.problems)
  assert.deepEqual(problems, [], 'no failed request, no generation going backwards')
  const total = stats.reduce((n, s) => n + s.requests, 0)
  const generations = new Set(stats.flatMap((s) => [...s.seen]))
  t.diagnostic(
    `${total} requests over ${connections} connections, ${generations.size} generations seen, ` +
      `${stats.reduce((n, s) => n + s.reused, 0)} on reused sockets`,
  )
  // the load really overlapped the reloads and really kept its connections
  assert.ok(generations.size >= 10, `requests met ${generations.size} generations only`)
  for (const [i, s] of stats.entries()) {
    assert.ok(s.seen.size >= 2, `connection ${i} saw generations ${[...s.seen]}`)
    assert.ok(s.reused >= s.requests / 2, `connection ${i} kept its socket (${s.reused}/${s.requests})`)
  }
  const { code } = await host.stop('SIGTERM')
  assert.equal(code, 0, host.stderr())
})

// Each replaced generation must become garbage once drained: a closure of the transaction that
// outlives it (the new generation's ctx.use lookup once did) pins every generation before it,
// with its bundle's files, context and logger.
test('old generations are garbage-collected after their reload', {
  timeout: 120_000,
}, async (t) => {
  const root = await makeRoot(t)
  // a dependency that is never reloaded counts, through a FinalizationRegistry, the ballast
  // generations' contexts that get collected; gc() without --expose-gc on the host's command line
  await deploy(root, 'probe', {
    files: {
      'index.js': `const track = { created: 0, collected: 0 }
track.registry = new FinalizationRegistry(() => { track.collected++ })
globalThis.__nyalaLoadTestGenerations = track
require('node:v8').setFlagsFromString('--expose-gc')
const gc = require('node:vm').runInNewContext('gc')
module.exports = { async register (app) {
  app.get('/', async () => {
    for (let i = 0; i < 6; i++) { gc(); await new Promise((resolve) => setImmediate(resolve)) }
    await new Promise((resolve) => setTimeout(resolve, 50))
    gc()
    await new Promise((resolve) => setImmediate(resolve))
    return { created: track.created, collected: track.collected }
  })
} }
`,
    },
  })
  await deploy(root, 'ballast', {
    fields: { 'depends-on': 'probe' },
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  const track = globalThis.__nyalaLoadTestGenerations
  track.created++
  track.registry.register(ctx, ctx.generation)
  app.get('/', async () => ({ generation: ctx.generation }))
} }
`,
    },
  })
  const host = await startHost(t, root)
  const reloadsHere = 20
  for (let i = 0; i < reloadsHere; i++) {
    const res = await request(host.admin('/modules/ballast/reload?force=true'), { method: 'POST' })
    assert.equal(res.body.result, 'reloaded', res.text)
  }
  assert.equal((await request(host.url('/ballast'))).body.generation, reloadsHere + 1)
  // the last old generation drains and stops just after its swap
  let counts
  for (let i = 0; i < 20; i++) {
    counts = (await request(host.url('/probe'))).body
    if (counts.created - counts.collected <= 1) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  assert.equal(counts.created, reloadsHere + 1)
  assert.ok(
    counts.created - counts.collected <= 1,
    `${counts.created - counts.collected - 1} replaced generations still reachable after GC`,
  )
  const { code } = await host.stop('SIGTERM')
  assert.equal(code, 0, host.stderr())
})
