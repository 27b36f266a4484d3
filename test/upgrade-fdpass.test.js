// The descriptor-passing addon and the handover protocol's validation, with real sockets:
// a listening TCP socket crosses a Unix socket and serves on the other side; a regular file
// sent as a listener is refused and closed by a real successor.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { openSync, readdirSync, readlinkSync, statSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import { decodeFrame, encodeFrame, ProtocolViolation } from '../dist/upgrade/frame.js'
import { fdpass } from '../dist/upgrade/native.js'
import { cliPath, deploy, makeRoot, parseLogs, pidModuleFiles, request, waitUntil } from './helpers.js'

const native = fdpass()

/** A connected pair over a fresh upgrade-style socket in `dir`. */
function pair(t, dir) {
  const file = path.join(dir, 'pair.sock')
  const listener = native.listen(file, 4)
  const client = native.connect(file)
  const server = native.accept(listener)
  t.after(() => {
    for (const fd of [listener, client, server]) {
      try {
        native.close(fd)
      } catch {}
    }
  })
  return { file, client, server }
}

async function receive(fd) {
  for (let i = 0; i < 100; i++) {
    const m = native.recv(fd)
    if (m) return m
    await native.waitReadable(fd, 100)
  }
  throw new Error('nothing received')
}

const decodeMessage = (m) => decodeFrame(m.data, m.fds, m.truncated)

const fdTargets = (pid) => {
  const dir = `/proc/${pid}/fd`
  return readdirSync(dir).map((fd) => {
    try {
      return readlinkSync(path.join(dir, fd))
    } catch {
      return ''
    }
  })
}

test('a listening TCP socket sent with SCM_RIGHTS is adopted and serves; a file is described as one', async (t) => {
  const root = await makeRoot(t)
  const { file, client, server } = pair(t, root)
  assert.equal(statSync(file).mode & 0o777, 0o600, 'the socket file is mode 0600')
  const peer = native.peerCredentials(server)
  assert.equal(peer.uid, process.getuid())
  assert.equal(peer.pid, process.pid)

  const original = http.createServer((_req, res) => res.end('original'))
  await new Promise((resolve) => original.listen(0, '127.0.0.1', resolve))
  const { port } = original.address()
  const tcpFd = original._handle.fd
  const fileFd = openSync(path.join(root, 'config', 'impala.properties'), 'r')
  t.after(() => native.close(fileFd))

  native.send(client, Buffer.from('two descriptors'), [tcpFd, fileFd])
  const message = await receive(server)
  assert.equal(message.data.toString(), 'two descriptors')
  assert.equal(message.truncated, false)
  assert.equal(message.fds.length, 2)
  const [gotTcp, gotFile] = message.fds
  assert.notEqual(gotTcp, tcpFd, 'a new descriptor in this process')
  assert.deepEqual(native.describe(gotTcp), {
    kind: 'socket',
    listening: true,
    type: 'stream',
    family: 'inet',
  })
  assert.deepEqual(native.describe(gotFile), { kind: 'file', listening: false, type: 'none', family: 'none' })
  native.close(gotFile)

  // the original stops accepting; the adopted descriptor keeps the port open and serves
  await new Promise((resolve) => original.close(resolve))
  const adopted = http.createServer((_req, res) => res.end('adopted'))
  await new Promise((resolve) => adopted.listen({ fd: gotTcp }, 511, resolve))
  t.after(() => adopted.close())
  const res = await request(`http://127.0.0.1:${port}/`, { headers: { connection: 'close' } })
  assert.equal(res.text, 'adopted')
})

test('frames: version, type, counts and lengths are checked', () => {
  const good = encodeFrame('hello', { pid: 1, modules: ['a'] })
  assert.equal(decodeFrame(good, [], false).type, 'hello')
  const refuse = (data, fds, truncated, pattern) =>
    assert.throws(
      () => decodeFrame(data, fds, truncated),
      (err) => err instanceof ProtocolViolation && pattern.test(err.message),
    )
  const wrongVersion = Buffer.from(good)
  wrongVersion.writeUInt8(9, 4)
  refuse(wrongVersion, [], false, /protocol version 9/)
  refuse(Buffer.from('HTTP/1.1 200 OK\r\n'), [], false, /bad magic/)
  refuse(good, [5], false, /announces 0 descriptor\(s\), 1 arrived/)
  refuse(good, [], true, /truncated/)
  refuse(good.subarray(0, good.length - 1), [], false, /body bytes/)
  const unknownType = Buffer.from(good)
  unknownType.writeUInt8(77, 5)
  refuse(unknownType, [], false, /unknown message type 77/)
  const listeners = (list, count) => encodeFrame('listeners', { pid: 1, listeners: list }, count)
  const l = (name) => ({ name, family: 'IPv4', address: '127.0.0.1', port: 1 })
  refuse(listeners([l('http')], 2), [3, 4], false, /1 listeners named for 2 descriptor/)
  refuse(listeners([l('http'), l('http')], 2), [3, 4], false, /named twice/)
  refuse(listeners([l('../x')], 1), [3], false, /bad listener name/)
  refuse(listeners([], 0), [], false, /0 listeners/)
  assert.equal(
    decodeFrame(listeners([l('http'), l('admin')], 2), [3, 4], false).body.listeners[1].name,
    'admin',
  )
})

/**
 * `nyala start --upgrade` in a root serving `who`, once it waits on its upgrade socket;
 * `stdout()` is what it printed so far. Killed by `t.after` if still running.
 */
async function waitingSuccessor(t, properties) {
  const root = await makeRoot(t, properties)
  await deploy(root, 'who', { files: pidModuleFiles })
  const child = spawn(process.execPath, [cliPath, 'start', '--root', root, '--upgrade'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let stdout = ''
  child.stdout.on('data', (d) => (stdout += d))
  await waitUntil(() => /waiting for the running instance/.test(stdout), 'the successor to wait')
  return { root, child, stdout: () => stdout }
}

test('a real successor refuses a non-socket descriptor, closes it, and keeps waiting', async (t) => {
  const successor = await waitingSuccessor(t, 'port=0\nhost=127.0.0.1\nupgrade.wait.timeout=60\n')
  const { root, child } = successor
  const socket = path.join(root, 'run', 'upgrade.sock')

  const secret = path.join(root, 'config', 'impala.properties')
  const fileFd = openSync(secret, 'r')
  t.after(() => native.close(fileFd))
  const conn = native.connect(socket)
  t.after(() => native.close(conn))
  assert.equal(native.peerCredentials(conn).pid, child.pid)
  native.send(conn, encodeFrame('hello', { pid: process.pid, modules: ['who'] }), [])
  const ready = decodeMessage(await receive(conn))
  assert.equal(ready.type, 'ready')
  assert.equal(ready.body.pid, child.pid)
  const listener = { name: 'http', family: 'IPv4', address: '127.0.0.1', port: 1 }
  native.send(conn, encodeFrame('listeners', { pid: process.pid, listeners: [listener] }, 1), [fileFd])
  const answer = decodeMessage(await receive(conn))
  assert.equal(answer.type, 'nak')
  assert.equal(answer.body.code, 'NYALA_ERR_UPGRADE_PROTOCOL')
  assert.match(answer.body.reason, /listener "http": the descriptor is a file, not a listening socket/)

  await waitUntil(() => /connection dropped, still waiting/.test(successor.stdout()), 'the refusal record')
  assert.ok(!fdTargets(child.pid).includes(secret), 'the successor closed the descriptor it refused')
  assert.ok(!parseLogs(successor.stdout()).some((r) => /^listening/.test(r.msg)), 'it never listened')

  // a wrong protocol version is refused as well, and the successor still waits
  const conn2 = native.connect(socket)
  t.after(() => native.close(conn2))
  const bad = encodeFrame('hello', { pid: process.pid, modules: [] })
  bad.writeUInt8(2, 4)
  native.send(conn2, bad, [])
  const answer2 = decodeMessage(await receive(conn2))
  assert.equal(answer2.type, 'nak')
  assert.match(answer2.body.reason, /protocol version 2, this Nyala speaks 1/)
  assert.equal(child.exitCode, null)

  // SIGTERM while waiting: exits 0 and removes its socket
  const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  assert.equal(await exited, 0)
  assert.throws(() => statSync(socket), { code: 'ENOENT' })
})

/**
 * A successor waiting in `nyala start --upgrade`, handed a real listening TCP socket by this
 * process acting as the old instance; resolves once the successor has acknowledged. This
 * process has then stopped accepting on the socket (its server closed), as an old instance
 * does in the tick the acknowledgement arrives.
 */
async function handOverByHand(t) {
  const { root, child, stdout } = await waitingSuccessor(
    t,
    'port=0\nhost=127.0.0.1\nadmin.port=0\nupgrade.wait.timeout=60\n',
  )

  const server = net.createServer(() => assert.fail('the old side accepts nothing after the handover'))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => server.close())
  const { port } = server.address()
  const conn = native.connect(path.join(root, 'run', 'upgrade.sock'))
  let open = true
  const hangUp = () => {
    if (open) native.close(conn)
    open = false
  }
  t.after(hangUp)
  native.send(conn, encodeFrame('hello', { pid: process.pid, modules: ['who'] }), [])
  assert.equal(decodeMessage(await receive(conn)).type, 'ready')
  const listener = { name: 'http', family: 'IPv4', address: '127.0.0.1', port }
  native.send(conn, encodeFrame('listeners', { pid: process.pid, listeners: [listener] }, 1), [
    server._handle.fd,
  ])
  const ack = decodeMessage(await receive(conn))
  assert.equal(ack.type, 'ack')
  assert.ok(ack.body.adopted.includes('http'), ack.body.adopted.join())
  await new Promise((resolve) => server.close(resolve))
  const stop = async () => {
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
    child.kill('SIGTERM')
    assert.equal(await exited, 0)
  }
  return { child, conn, port, hangUp, logs: () => parseLogs(stdout()), stop }
}

/** GET /who/ on a new connection; `answered` is set when the response's head arrives. */
function pendingGet(port) {
  const state = { answered: false }
  state.done = new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/who/', agent: false }, (res) => {
      state.answered = true
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }))
    })
    req.on('error', reject)
  })
  return state
}

test('the successor accepts only once the old instance says it stopped ("released"): never both at once', async (t) => {
  const { child, conn, port, logs, stop } = await handOverByHand(t)
  // a connection made now waits in the socket's backlog: neither side accepts it yet
  const get = pendingGet(port)
  await new Promise((resolve) => setTimeout(resolve, 300))
  assert.equal(get.answered, false, 'the successor accepted before the old instance released the socket')
  native.send(conn, encodeFrame('released', { pid: process.pid }), [])
  assert.deepEqual(await get.done, { status: 200, body: { pid: child.pid } })
  await waitUntil(
    () => logs().some((r) => r.msg === `took over the listeners of pid ${process.pid}`),
    'the takeover record',
  )
  assert.deepEqual(
    logs()
      .filter((r) => r.level >= 40)
      .map((r) => r.msg),
    [],
  )
  await stop()
})

test('an old instance that hangs up after the acknowledgement (an older Nyala) releases the socket too', async (t) => {
  const { child, port, hangUp, logs, stop } = await handOverByHand(t)
  hangUp()
  const get = pendingGet(port)
  assert.deepEqual(await get.done, { status: 200, body: { pid: child.pid } })
  await waitUntil(
    () =>
      logs().some((r) => r.msg.includes('did not say it stopped accepting (the peer closed the connection)')),
    'the warning',
  )
  await stop()
})
