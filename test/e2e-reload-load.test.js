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
import { deploy, makeRoot, moduleSource, modulesOf, packWithNyala, request, startHost } from './helpers.js'

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

/** One GET on `agent`; resolves { status, body, reused } or { error }. Never rejects. */
function get(agent, url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 15_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => {
        let body
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
        resolve({ status: res.statusCode, body, reused: req.reusedSocket })
      })
      res.on('error', (error) => resolve({ error }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', (error) => resolve({ error }))
  })
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
      const res = await get(agent, url)
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
    const res = await get(agent, url)
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
