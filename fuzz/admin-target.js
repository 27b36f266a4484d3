// Target 2: random admin API requests against a real host over 127.0.0.1. Every
// malformed request must get a 4xx whose JSON body carries a NYALA_ERR_* code (a HEAD
// answer has no body), never a 5xx, never silence; the host must keep serving.
import net from 'node:net'
import { adminCase } from './admin-cases.js'
import { stillServing } from './host.js'
import { Tally } from './report.js'
import { caseSeed, makeRng } from './rng.js'

/**
 * Writes `bytes` and collects the whole answer until the host closes (every request
 * says `Connection: close`). It does not half-close: Node's HTTP server drops the answer
 * to a request whose client half-closed before an asynchronous handler answered. A
 * request that may never be complete (`incomplete`: a length or chunk size larger than
 * the body sent) is half-closed after half a second of silence, so the host sees its end.
 */
function exchange(port, bytes, timeoutMs, incomplete) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const chunks = []
    let done = false
    const finish = (how) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ how, data: Buffer.concat(chunks) })
    }
    const timer = setTimeout(() => finish('timeout'), timeoutMs)
    socket.on('data', (d) => {
      chunks.push(d)
      // a server-sent event stream stays open: its head is the answer
      if (/content-type: text\/event-stream/i.test(Buffer.concat(chunks).toString('latin1'))) finish('stream')
    })
    socket.on('end', () => finish('end'))
    socket.on('error', () => finish('error'))
    socket.on('connect', () => {
      socket.write(bytes, () => {
        if (incomplete) setTimeout(() => chunks.length === 0 && !done && socket.end(), 500).unref()
      })
    })
  })
}

function dechunk(body) {
  const out = []
  let at = 0
  for (;;) {
    const eol = body.indexOf('\r\n', at)
    if (eol < 0) break
    const size = Number.parseInt(body.subarray(at, eol).toString('latin1'), 16)
    if (!(size > 0)) break
    out.push(body.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(out)
}

/** { verdict, failure?, detail? } of one answer. */
export function judge(c, answer) {
  const text = answer.data
  const split = text.indexOf('\r\n\r\n')
  const statusLine = text.subarray(0, text.indexOf('\r\n')).toString('latin1')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1])
  if (answer.how === 'timeout')
    return {
      verdict: 'timeout',
      failure: 'hang',
      detail: `no complete answer; got ${JSON.stringify(text.subarray(0, 200).toString('latin1'))}`,
    }
  if (!status) {
    // a request whose body never came whole (a length or chunk size larger than what was
    // sent) is aborted when the client half-closes: nothing to answer
    if (c.cls === 'bad-length' || c.cls === 'chunked') return { verdict: 'closed (request incomplete)' }
    return {
      verdict: 'no answer',
      failure: 'no-answer',
      detail: `the connection ended (${answer.how}) without a status line`,
    }
  }
  if (status >= 500)
    return {
      verdict: String(status),
      failure: '5xx',
      detail: `${statusLine}\n${text.subarray(split + 4, split + 600).toString('utf8')}`,
    }
  if (status < 400 || c.method === 'HEAD') return { verdict: String(status) }
  const head = text.subarray(0, split).toString('latin1')
  let body = text.subarray(split + 4)
  if (/transfer-encoding: chunked/i.test(head)) body = dechunk(body)
  let json
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    return {
      verdict: String(status),
      failure: 'not-json',
      detail: `${statusLine}\n${body.subarray(0, 300).toString('utf8')}`,
    }
  }
  // a failed reload is a verdict, not a refused call: its code is in `error` (README, Admin API)
  const code = json?.result === 'failed' && status === 422 ? json.error?.code : json?.code
  if (typeof code !== 'string' || !code.startsWith('NYALA_ERR_')) {
    return {
      verdict: String(status),
      failure: 'uncoded',
      detail: `${statusLine}\n${body.subarray(0, 300).toString('utf8')}`,
    }
  }
  return { verdict: `${status} ${code}` }
}

export async function fuzzAdmin({
  seed,
  from = 0,
  to,
  deadline,
  caseTimeoutMs,
  host,
  concurrency = 4,
  checkEvery = 250,
}) {
  const tally = new Tally('admin')
  const bodyLimit = 1024 * 1024
  let next = from
  const worker = async () => {
    while (next < to && Date.now() < deadline) {
      const index = next++
      const c = adminCase(makeRng(caseSeed(seed, 'admin', index)), { bodyLimit })
      const started = performance.now()
      const incomplete = c.cls === 'bad-length' || c.cls === 'chunked'
      const answer = await exchange(host.adminPort, c.bytes, Math.min(caseTimeoutMs, 10_000), incomplete)
      const { verdict, failure, detail } = judge(c, answer)
      const request = `${c.method ?? ''} ${(c.target ?? '').slice(0, 100)}`.trim()
      tally.add(
        index,
        c.cls,
        verdict,
        failure,
        failure ? `${request}\n${detail}` : undefined,
        performance.now() - started,
      )
      if (index % checkEvery === 0) {
        const down = await stillServing(host)
        if (down) tally.add(index, c.cls, 'host down', 'host-down', down)
        if (down) next = to
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const down = await stillServing(host)
  if (down) tally.add(to, 'after', 'host down', 'host-down', down)
  return tally.finish()
}
