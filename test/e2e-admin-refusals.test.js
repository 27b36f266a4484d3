// Every refusal of the admin API carries a NYALA_ERR_* code, including the ones Fastify or
// Node's HTTP parser make before a route runs (found by npm run fuzz, fuzz/admin-cases.js:
// before, an unknown route, a broken JSON body or request line answered without a code).
// A real host on 127.0.0.1, requests written raw so that malformed ones can be sent.
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import { deploy, makeRoot, startHost } from './helpers.js'

const token = 'refusal-token'

/** Writes a raw request and reads the answer until the host closes; { status, json }. */
function raw(port, text) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    const chunks = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no answer to ${JSON.stringify(text.slice(0, 80))}`))
    }, 15_000)
    socket.on('data', (d) => chunks.push(d))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      const answer = Buffer.concat(chunks).toString('utf8')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
      const body = answer.slice(answer.indexOf('\r\n\r\n') + 4)
      let json
      try {
        json = JSON.parse(body)
      } catch {}
      resolve({ status, json, answer })
    })
    socket.write(text)
  })
}

const request = (method, path, { headers = {}, body = '' } = {}) =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${token}\r\n${Object.entries(
    headers,
  )
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`

test('malformed admin requests get a coded 4xx, never a 5xx or an uncoded answer', async (t) => {
  // bundles up to 2 MiB: more than the 1 MiB every other route takes
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nadmin.token=${token}\nbundle.max.bytes=2M\n`)
  await deploy(root, 'alpha')
  const host = await startHost(t, root)
  const port = host.adminPort
  const cases = [
    ['unknown route', request('GET', '/nosuch'), 404, 'NYALA_ERR_ADMIN_NOT_FOUND'],
    ['unknown method on a route', request('PATCH', '/modules'), 404, 'NYALA_ERR_ADMIN_NOT_FOUND'],
    [
      'broken JSON body',
      request('POST', '/reload', { headers: { 'Content-Type': 'application/json' }, body: '{"a":' }),
      400,
      'NYALA_ERR_ADMIN_REQUEST',
      'FST_ERR_CTP_INVALID_JSON_BODY',
    ],
    [
      'unknown content type',
      request('POST', '/reload', { headers: { 'Content-Type': 'text/xml' }, body: '<a/>' }),
      415,
      'NYALA_ERR_ADMIN_REQUEST',
      'FST_ERR_CTP_INVALID_MEDIA_TYPE',
    ],
    [
      'deploy body over bundle.max.bytes',
      request('PUT', '/deploy/alpha.zip', {
        headers: { 'Content-Type': 'application/zip' },
        body: 'x'.repeat(2 * 1024 * 1024 + 1),
      }),
      413,
      'NYALA_ERR_ADMIN_REQUEST',
      'FST_ERR_CTP_BODY_TOO_LARGE',
    ],
    [
      // a bundle's limit is for PUT /deploy only: it once applied to every route
      'a bundle-typed body over 1 MiB on another route',
      request('POST', '/reload', {
        headers: { 'Content-Type': 'application/octet-stream' },
        body: 'x'.repeat(1024 * 1024 + 1),
      }),
      413,
      'NYALA_ERR_ADMIN_REQUEST',
      'FST_ERR_CTP_BODY_TOO_LARGE',
    ],
    [
      'URL that does not decode',
      request('GET', '/modules/%zz'),
      400,
      'NYALA_ERR_ADMIN_REQUEST',
      'FST_ERR_BAD_URL',
    ],
    ['broken request line', 'GET / HTTP/1.1 x\r\nHost: x\r\n\r\n', 400, 'NYALA_ERR_ADMIN_REQUEST'],
    ['invalid method', 'G\u0000T / HTTP/1.1\r\nHost: x\r\n\r\n', 400, 'NYALA_ERR_ADMIN_REQUEST'],
    [
      'headers past the limit',
      request('GET', '/modules', { headers: { 'X-Big': 'v'.repeat(20_000) } }),
      431,
      'NYALA_ERR_ADMIN_REQUEST',
    ],
    [
      'wrong token',
      request('GET', '/modules').replace(token, 'wrong-token-x'),
      401,
      'NYALA_ERR_ADMIN_UNAUTHORIZED',
    ],
  ]
  for (const [what, text, status, code, fastifyCode] of cases) {
    const answer = await raw(port, text)
    assert.equal(answer.status, status, `${what}: ${answer.answer.slice(0, 300)}`)
    assert.equal(answer.json?.code, code, `${what}: ${answer.answer.slice(0, 300)}`)
    assert.equal(answer.json?.statusCode, status, what)
    if (fastifyCode) assert.equal(answer.json?.fastifyCode, fastifyCode, what)
  }
  // the scheme's name in any case, as HTTP has it
  const lower = await raw(port, request('GET', '/modules').replace('Bearer ', 'bearer '))
  assert.equal(lower.status, 200, lower.answer.slice(0, 300))
  // a failed reload: a 422 verdict, its code in `error` (the shape nyala reload reads)
  const broken = await raw(port, request('POST', '/modules/alpha/reload?force=true'))
  assert.equal(broken.status, 200, broken.answer.slice(0, 300))
  await writeFile(path.join(root, 'modules', 'alpha.zip'), 'not a zip at all')
  const failed = await raw(port, request('POST', '/reload'))
  assert.equal(failed.status, 422)
  assert.equal(failed.json.result, 'failed')
  assert.match(failed.json.error.code, /^NYALA_ERR_BUNDLE_/)
  // HEAD of the event stream: its head, then the end (it used to wait forever)
  const head = await raw(port, request('HEAD', '/events'))
  assert.equal(head.status, 200)
  assert.match(head.answer, /content-type: text\/event-stream/i)
  // a path of 10 kB is quoted by its first 200 characters
  const long = await raw(port, request('GET', `/${'a'.repeat(10_000)}`))
  assert.equal(long.json?.code, 'NYALA_ERR_ADMIN_NOT_FOUND')
  assert.ok(long.json.message.length < 400)
  // refused by the parser while the client still sends a large body: the answer arrives, not a
  // reset (the host reads on for a moment before closing; closing with bytes unread sends RST)
  for (let i = 0; i < 3; i++) {
    const big = `${request('POST', `/modules/${'a'.repeat(40_000)}`, {
      headers: { 'Content-Type': 'application/json' },
      body: ' '.repeat(8 * 1024 * 1024),
    })}`
    const refused = await raw(port, big)
    assert.equal(refused.status, 431, `attempt ${i}: ${refused.answer.slice(0, 200)}`)
    assert.equal(refused.json?.code, 'NYALA_ERR_ADMIN_REQUEST')
  }
  // and the host still serves
  assert.equal((await raw(port, request('GET', '/health'))).status, 200)
  assert.equal((await fetch(host.url('/alpha/'))).status, 200)
  // over 1 MiB but within bundle.max.bytes, PUT /deploy takes it (the file is checked by the
  // watcher, not at the upload)
  const bigDeploy = await raw(
    port,
    request('PUT', '/deploy/alpha.zip', {
      headers: { 'Content-Type': 'application/zip' },
      body: 'x'.repeat(1536 * 1024),
    }),
  )
  assert.equal(bigDeploy.status, 202, bigDeploy.answer.slice(0, 300))
  assert.equal(bigDeploy.json.module, 'alpha')
})
