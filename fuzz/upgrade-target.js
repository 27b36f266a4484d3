// Target 3: upgrade-socket messages. Most go to the frame decoder in-process (every
// message is a valid frame or a ProtocolViolation, nothing else); every `socketEvery`th
// goes over the real socket to a successor (`nyala start --upgrade`) waiting for a
// running instance: it must answer `nak` with NYALA_ERR_UPGRADE_PROTOCOL, log that code,
// close the connection and keep waiting; it never exits, never adopts anything.
import { closeSync, openSync, rmSync } from 'node:fs'
import { decodeFrame, ProtocolViolation } from '../dist/upgrade/frame.js'
import { fdpass } from '../dist/upgrade/native.js'
import { stillServing } from './host.js'
import { Tally } from './report.js'
import { caseSeed, makeRng } from './rng.js'
import { upgradeCase } from './upgrade-cases.js'

function decodeVerdict(c, truncated) {
  const fakeFds = Array.from({ length: c.fdCount }, (_, i) => 1000 + i)
  try {
    const frame = decodeFrame(c.data, fakeFds, truncated)
    return { verdict: `decoded ${frame.type}` }
  } catch (err) {
    if (err instanceof ProtocolViolation) return { verdict: 'violation' }
    return { verdict: 'threw', failure: 'not-a-violation', detail: err?.stack ?? String(err) }
  }
}

/** Every message the successor sends until it closes, or `timeout` when it does not within `ms`. */
async function answers(fd, ms) {
  const native = fdpass()
  const got = []
  const deadline = Date.now() + ms
  for (;;) {
    const message = native.recv(fd)
    if (message) {
      for (const extra of message.fds) closeSync(extra)
      if (message.data.length === 0) return { got, closed: true }
      try {
        got.push(decodeFrame(message.data, [], false))
      } catch (err) {
        got.push({ type: `undecodable (${err.message})` })
      }
      continue
    }
    const left = deadline - Date.now()
    if (left <= 0 || !(await native.waitReadable(fd, Math.min(left, 200)))) {
      if (Date.now() >= deadline) return { got, closed: false }
    }
  }
}

function sendWithFds(fd, c) {
  // descriptors that are not listening sockets: /dev/null
  const fds = Array.from({ length: c.fdCount }, () => openSync('/dev/null', 'r'))
  try {
    fdpass().send(fd, c.data, fds)
  } finally {
    for (const extra of fds) closeSync(extra)
  }
}

async function overSocket(successor, rng, c) {
  const native = fdpass()
  const before = successor.logs().filter((r) => r.code === 'NYALA_ERR_UPGRADE_PROTOCOL').length
  let fd
  try {
    fd = native.connect(successor.socket)
  } catch (err) {
    return { verdict: 'connect failed', failure: 'refused-connection', detail: err.message }
  }
  try {
    sendWithFds(fd, c)
    let reply = await answers(fd, 1000)
    // a first message the successor took (a valid hello): it answered `ready`; a second, broken one follows
    if (!reply.closed && reply.got.some((f) => f.type === 'ready')) {
      let second = upgradeCase(rng)
      while (second.type === 'ack' && second.how === 'valid') second = upgradeCase(rng)
      sendWithFds(fd, second)
      reply = await answers(fd, 12_000)
    } else if (!reply.closed) reply = await answers(fd, 11_000)
    const types = reply.got.map((f) => f.type).join(', ') || 'nothing'
    if (!reply.closed)
      return {
        verdict: 'hang',
        failure: 'hang',
        detail: `the successor kept the connection open; it sent: ${types}`,
      }
    const nak = reply.got.find((f) => f.type === 'nak')
    if (nak?.body.code !== 'NYALA_ERR_UPGRADE_PROTOCOL') {
      return {
        verdict: `closed after ${types}`,
        failure: 'no-nak',
        detail: `answers: ${JSON.stringify(reply.got).slice(0, 500)}`,
      }
    }
    // the log record may trail the answer by a moment
    for (let i = 0; i < 20; i++) {
      if (successor.logs().filter((r) => r.code === 'NYALA_ERR_UPGRADE_PROTOCOL').length > before) break
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (successor.logs().filter((r) => r.code === 'NYALA_ERR_UPGRADE_PROTOCOL').length <= before) {
      return { verdict: 'nak', failure: 'not-logged', detail: 'no NYALA_ERR_UPGRADE_PROTOCOL log record' }
    }
    return { verdict: 'nak, logged, closed' }
  } finally {
    native.close(fd)
  }
}

/** The first message waiting on `fd` within `ms`, or undefined. */
async function nextMessage(fd, ms) {
  const native = fdpass()
  const deadline = Date.now() + ms
  for (;;) {
    const message = native.recv(fd)
    if (message) return message
    if (Date.now() >= deadline) return undefined
    await native.waitReadable(fd, Math.min(200, Math.max(1, deadline - Date.now())))
  }
}

/**
 * The running instance's side: the fuzzer poses as a successor on the host's upgrade socket,
 * sends SIGQUIT, takes the `hello`, and answers with the case's message (and, when that was
 * a valid `ready`, a second broken one after the listeners came; never a valid `ack`). The
 * host must log "handover failed" with a NYALA_ERR_* code, close the connection and keep
 * serving on every listener.
 */
async function overOldInstance(host, listenFd, rng, c) {
  const native = fdpass()
  const failed = () => host.logs().filter((r) => /^handover failed/.test(r.msg ?? ''))
  const before = failed().length
  process.kill(host.child.pid, 'SIGQUIT')
  const until = Date.now() + 10_000
  let fd = native.accept(listenFd)
  for (; fd < 0; fd = native.accept(listenFd)) {
    if (Date.now() >= until)
      return {
        verdict: 'no connection',
        failure: 'no-connect',
        detail: 'SIGQUIT, and the host never connected',
      }
    await native.waitReadable(listenFd, 200)
  }
  try {
    const hello = await nextMessage(fd, 10_000)
    if (!hello)
      return { verdict: 'no hello', failure: 'no-hello', detail: 'the host connected and said nothing' }
    sendWithFds(fd, c)
    for (;;) {
      const message = await nextMessage(fd, 20_000)
      if (!message) return { verdict: 'hang', failure: 'hang', detail: 'the host kept the connection open' }
      // its listening sockets, when our message was a valid `ready`: never adopted here
      for (const extra of message.fds) closeSync(extra)
      if (message.data.length === 0) break
      let second = upgradeCase(rng)
      while (second.type === 'ack' && second.how === 'valid') second = upgradeCase(rng)
      sendWithFds(fd, second)
    }
  } finally {
    native.close(fd)
  }
  for (let i = 0; i < 100 && failed().length <= before; i++)
    await new Promise((resolve) => setTimeout(resolve, 50))
  const record = failed()[before]
  if (!record) return { verdict: 'closed', failure: 'not-logged', detail: 'no "handover failed" log record' }
  if (!/^NYALA_ERR_/.test(record.code ?? ''))
    return { verdict: 'logged', failure: 'uncoded', detail: JSON.stringify(record) }
  const down = await stillServing(host)
  if (down) return { verdict: record.code, failure: 'host-down', detail: down }
  return { verdict: `refused: ${record.code}` }
}

export async function fuzzUpgrade({
  seed,
  from = 0,
  to,
  deadline,
  successor,
  host,
  socketEvery = 10,
  oldEvery = 20,
}) {
  const native = fdpass()
  const listenFd = host ? native.listen(host.upgradeSocket, 4) : -1
  const tally = new Tally('upgrade')
  for (let index = from; index < to && Date.now() < deadline; index++) {
    const rng = makeRng(caseSeed(seed, 'upgrade', index))
    const c = upgradeCase(rng)
    const started = performance.now()
    const truncated = rng.chance(0.05)
    const local = decodeVerdict(c, truncated)
    if (c.how === 'valid' && !truncated && local.verdict === 'violation') {
      local.failure = 'valid-refused'
      local.detail = `a valid ${c.type} frame was refused`
    }
    tally.add(
      index,
      `${c.how} (decoder)`,
      local.verdict,
      local.failure,
      local.detail,
      performance.now() - started,
    )
    if (host && index % oldEvery === 1) {
      const t = performance.now()
      const old = await overOldInstance(host, listenFd, rng, c)
      tally.add(index, `${c.how} (running host)`, old.verdict, old.failure, old.detail, performance.now() - t)
      if (old.failure === 'host-down') break
    }
    if (index % socketEvery !== 0) continue
    const t = performance.now()
    const remote = await overSocket(successor, rng, c)
    tally.add(
      index,
      `${c.how} (socket)`,
      remote.verdict,
      remote.failure,
      remote.detail,
      performance.now() - t,
    )
    if (successor.child.exitCode !== null || successor.child.signalCode !== null) {
      tally.add(
        index,
        'after',
        'successor gone',
        'exited',
        `the successor exited\n${successor.stderr().slice(-2000)}`,
      )
      break
    }
  }
  if (listenFd >= 0) {
    native.close(listenFd)
    rmSync(host.upgradeSocket, { force: true })
  }
  return tally.finish()
}
