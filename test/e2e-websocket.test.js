// HTTP upgrades reach modules (issue 15 part 5): a module registering the real
// @fastify/websocket (in its bundle's node_modules, copied from the project's devDependencies)
// serves a WebSocket echo through the real CLI; open sockets stay on their generation across a
// reload and a process upgrade, and are closed with 1001 "going away" when the drain ends.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { copyFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import WebSocket from 'ws'
import {
  copyPackages,
  isAlive,
  killAfter,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithZip,
  request,
  runCli,
  startDaemon,
  startHost,
  waitUntil,
} from './helpers.js'

/** An echo answering `<generation>:<pid>:<message>`, so a test sees which generation and process serve a socket. */
const echoIndex = (tag) => `const websocket = require('@fastify/websocket')
module.exports = {
  async register (app, ctx) {
    await app.register(websocket)
    app.get('/echo', { websocket: true }, (socket) => {
      socket.on('message', (data) => socket.send(ctx.generation + ':' + process.pid + ':' + data))
    })
    app.get('/', async () => ({ generation: ctx.generation, tag: ${JSON.stringify(tag)}, pid: process.pid }))
  }
}
`

/** The echo module's source under `<root>/src/<dir>`, with @fastify/websocket and its packages, zipped to `out`. */
async function echoBundle(root, dir, tag, out) {
  const src = await moduleSource(root, dir, {
    fields: { prefix: '/chat' },
    files: { 'index.js': echoIndex(tag) },
  })
  await copyPackages(src, ['@fastify/websocket'])
  return packWithZip(src, out)
}

/** Opens a WebSocket; resolves with it and a `next()` giving its messages in order. */
async function connect(url) {
  const ws = new WebSocket(url)
  const messages = []
  const waiting = []
  ws.on('message', (data) => {
    const text = data.toString()
    const w = waiting.shift()
    if (w) w(text)
    else messages.push(text)
  })
  const closed = once(ws, 'close').then(([code, reason]) => ({ code, reason: reason.toString() }))
  await once(ws, 'open')
  return {
    ws,
    closed,
    async echo(text) {
      const reply =
        messages.length > 0 ? Promise.resolve(messages.shift()) : new Promise((r) => waiting.push(r))
      ws.send(text)
      return withTimeout(reply, `echo of ${text}`)
    },
  }
}

/** A refused handshake: resolves { status, body } of the HTTP answer. */
async function refused(url) {
  const ws = new WebSocket(url)
  const [, res] = await withTimeout(once(ws, 'unexpected-response'), `answer to ${url}`)
  let text = ''
  res.setEncoding('utf8')
  for await (const chunk of res) text += chunk
  // aborting a handshake is reported as an error of the client: expected here
  ws.on('error', () => {})
  ws.terminate()
  return { status: res.statusCode, body: text === '' ? {} : JSON.parse(text) }
}

function withTimeout(promise, what, ms = 15_000) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

test('a WebSocket echo keeps its generation across a reload, then the drain timeout closes it with 1001', async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nauto.reload.modules=true\nauto.reload.drain.timeout=6\nshutdown.grace.period=5\n',
  )
  await echoBundle(root, 'chat-a', 'a', path.join(modulesOf(root), 'chat.zip'))
  const host = await startHost(t, root)
  const wsUrl = `ws://127.0.0.1:${host.port}/chat/echo`
  const sockets = []
  t.after(() => {
    for (const s of sockets) s.ws.terminate()
  })

  const first = await connect(wsUrl)
  sockets.push(first)
  assert.match(await first.echo('hello'), /^1:\d+:hello$/)

  // the reload: a bundle of other content replaces the file
  const next = await echoBundle(root, 'chat-b', 'b', path.join(root, 'src', 'chat-b.zip'))
  await copyFile(next, path.join(modulesOf(root), 'chat.zip'))
  await waitUntil(
    async () => (await request(host.url('/chat/'))).body.tag === 'b',
    'the reload to generation 2',
  )

  // the open socket still runs on generation 1; a new one goes to generation 2
  assert.match(await first.echo('still here'), /^1:\d+:still here$/)
  const second = await connect(wsUrl)
  sockets.push(second)
  assert.match(await second.echo('new'), /^2:\d+:new$/)
  const metrics = await request(host.admin('/metrics'))
  assert.match(metrics.text, /nyala_upgraded_connections\{module="chat",generation="2"\} 1/)
  assert.match(metrics.text, /nyala_inflight_requests\{module="chat",generation="2"\} 1/)

  // auto.reload.drain.timeout ends the old generation's socket with "going away"
  assert.deepEqual(await withTimeout(first.closed, 'the old socket to close'), {
    code: 1001,
    reason: 'going away',
  })
  await waitUntil(
    () => host.logs().some((r) => r.module === 'chat' && r.generation === 1 && /stopped/.test(r.msg)),
    'generation 1 to stop after the drain',
    15_000,
  )
  assert.match(await second.echo('after'), /^2:\d+:after$/)

  // a graceful stop closes the open socket the same way, and the host exits
  const exit = host.stop('SIGTERM')
  assert.deepEqual(await withTimeout(second.closed, 'the socket to close at shutdown'), {
    code: 1001,
    reason: 'going away',
  })
  assert.equal((await withTimeout(exit, 'the host to exit')).code, 0)
})

test('a blocking-mode reload holds requests for the requests in flight, not for an open WebSocket', async (t) => {
  // were the gate to wait for the socket (up to the drain timeout), requests would wait out
  // auto.reload.block.timeout and get 503
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nauto.reload.modules=true\nauto.reload.mode=blocking\nauto.reload.block.timeout=5\nauto.reload.drain.timeout=60\n',
  )
  await echoBundle(root, 'chat-a', 'a', path.join(modulesOf(root), 'chat.zip'))
  const host = await startHost(t, root)
  const open = await connect(`ws://127.0.0.1:${host.port}/chat/echo`)
  t.after(() => open.ws.terminate())
  assert.match(await open.echo('one'), /^1:\d+:one$/)

  const next = await echoBundle(root, 'chat-b', 'b', path.join(root, 'src', 'chat-b.zip'))
  await copyFile(next, path.join(modulesOf(root), 'chat.zip'))
  const answers = []
  await waitUntil(
    async () => {
      const res = await request(host.url('/chat/'))
      answers.push(res.status)
      return res.body.tag === 'b'
    },
    'the reload to generation 2',
    20_000,
  )
  assert.deepEqual(
    answers.filter((s) => s !== 200),
    [],
    'no request was refused while the reload held them',
  )
  assert.match(await open.echo('two'), /^1:\d+:two$/, 'the socket stays on generation 1 after the swap')

  // the drain ends when the last socket closes, not at its timeout
  open.ws.close(1000)
  assert.equal((await open.closed).code, 1000)
  await waitUntil(
    () => host.logs().some((r) => r.module === 'chat' && r.generation === 1 && /stopped/.test(r.msg)),
    'generation 1 to stop once its socket closed',
    30_000,
  )
  assert.ok(!host.logs().some((r) => /drain\.timeout/.test(r.msg)), 'no drain timeout was needed')
})

test('upgrades no module takes are refused with an HTTP error naming why', async (t) => {
  const root = await makeRoot(t)
  await echoBundle(root, 'chat', 'a', path.join(modulesOf(root), 'chat.zip'))
  const plain = await moduleSource(root, 'plain')
  await packWithZip(plain, path.join(modulesOf(root), 'plain.zip'))
  const broken = await moduleSource(root, 'broken', {
    files: { 'index.js': `module.exports = { async register () { throw new Error('no') } }\n` },
  })
  await packWithZip(broken, path.join(modulesOf(root), 'broken.zip'))
  const host = await startHost(t, root)
  const base = `ws://127.0.0.1:${host.port}`

  const unknown = await refused(`${base}/nowhere/echo`)
  assert.equal(unknown.status, 404)
  assert.equal(unknown.body.code, 'NYALA_ERR_NO_MODULE')

  // a module in which nothing listens for upgrades
  const unhandled = await refused(`${base}/plain/`)
  assert.equal(unhandled.status, 404)
  assert.equal(unhandled.body.code, 'NYALA_ERR_UPGRADE_UNHANDLED')
  assert.match(unhandled.body.message, /"plain".*websocket/)

  // a module that failed to start
  const down = await refused(`${base}/broken/`)
  assert.equal(down.status, 503)
  assert.equal(down.body.code, 'NYALA_ERR_MODULE_UNAVAILABLE')

  // the WebSocket module answers a path it has no route for itself (Fastify's 404)
  const noRoute = await refused(`${base}/chat/missing`)
  assert.equal(noRoute.status, 404)

  // plain HTTP and the echo still work beside them
  assert.equal((await request(host.url('/plain/'))).body.module, 'plain')
  const echo = await connect(`${base}/chat/echo`)
  t.after(() => echo.ws.terminate())
  assert.match(await echo.echo('x'), /^1:\d+:x$/)
  echo.ws.close(1000)
  assert.equal((await echo.closed).code, 1000)
})

test('nyala upgrade: an open socket stays on the old process until the grace period ends it with 1001', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=8\n')
  await echoBundle(root, 'chat', 'a', path.join(modulesOf(root), 'chat.zip'))
  const old = await startDaemon(t, root)
  const wsUrl = `ws://127.0.0.1:${old.port}/chat/echo`
  const before = await connect(wsUrl)
  t.after(() => before.ws.terminate())
  assert.equal(await before.echo('a'), `1:${old.pid}:a`)

  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 90_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)

  // the old process keeps its socket while it drains; new sockets go to the successor
  assert.equal(await before.echo('b'), `1:${old.pid}:b`)
  const after = await connect(wsUrl)
  t.after(() => after.ws.terminate())
  assert.equal(await after.echo('c'), `1:${successor}:c`)
  assert.deepEqual(await withTimeout(before.closed, 'the old process to close its socket'), {
    code: 1001,
    reason: 'going away',
  })
  await waitUntil(() => !isAlive(old.pid), 'the old process to exit', 15_000)
  assert.equal(await after.echo('d'), `1:${successor}:d`)
  after.ws.close(1000)
  await after.closed
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), 'the successor to exit', 15_000)
})
