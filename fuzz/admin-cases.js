// Random admin API requests, written as raw HTTP/1.1 so that anything can be sent:
// methods, paths, headers and bodies a client library would refuse to write.
import { adminToken } from './host.js'

const routes = [
  '/modules',
  '/modules/fuzzmod',
  '/modules/fuzzmod/reload',
  '/modules/fuzzmod/reload?force=true',
  '/modules/nosuch/reload',
  '/modules/fuzzmod/unregister',
  '/modules/fuzzmod/register',
  '/reload',
  '/deploy/fuzzmod.zip',
  '/deploy/other-1.0.0.jar',
  '/health',
  '/ready',
  '/metrics',
  '/events',
  '/',
]
const families = ['modules', 'reload', 'deploy', 'health', 'ready', 'metrics', 'events']
const methods = [
  'GET',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'get',
  'G\x00T',
  'X'.repeat(100),
]
const pathNoise = [
  '%',
  '%zz',
  '%00',
  '%C0%AF',
  '%2e%2e%2f',
  '../../etc/passwd',
  '..%2f..%2f',
  '//',
  '\\',
  ';a=b',
  '?x=%ff',
  '#frag',
  '\u00e9',
  '*',
  ' ',
]
const contentTypes = [
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/zip',
  'application/octet-stream',
  'text/plain',
  'multipart/form-data; boundary=x',
  'application/x-www-form-urlencoded',
  '',
  '\u00ff\u00fe',
  'application/json'.repeat(100),
]

function path(rng) {
  let p = rng.pick(routes)
  // most paths are real routes, so the routes themselves are exercised too
  const how = rng.int(12)
  if (how === 1) p += rng.pick(pathNoise)
  if (how === 2) p = p.replace(/[a-z]+$/, rng.pick(pathNoise))
  if (how === 3) p = `/modules/${'a'.repeat(rng.pick([100, 1000, 10_000, 70_000]))}`
  if (how === 4)
    p = `/${Array.from({ length: rng.range(1, 6) }, () => rng.bytes(rng.range(1, 8)).toString('hex')).join('/')}`
  if (how === 5 && rng.chance(0.5)) p = rng.pick(['http://127.0.0.1/modules', '*', 'modules', ''])
  return p
}

function body(rng, limit) {
  return rng.weighted([
    [12, Buffer.alloc(0)],
    [2, Buffer.from(JSON.stringify({ force: rng.chance(0.5), name: 'fuzzmod' }))],
    [
      3,
      Buffer.from(
        rng.pick(['{', '{"a":', '[1,2', 'null', '"x"', '{"__proto__":{"x":1}}', '{"a":1}}', '\u0000', 'NaN']),
      ),
    ],
    [2, rng.bytes(rng.range(1, 4096))],
    [1, Buffer.alloc(rng.range(limit - 16, limit), 0x20)],
    [1, Buffer.alloc(rng.range(limit + 1, limit + 4096), 0x20)],
    [1, Buffer.from(`{"a":"${'x'.repeat(1024 * 1024)}"}`)],
  ])
}

/**
 * One request: { cls, bytes } where `bytes` is the whole request as written, and `cls`
 * names its shape for the counts (method and route family, or the kind of malformation).
 */
export function adminCase(rng, { bodyLimit }) {
  const shape = rng.weighted([
    [20, 'request'],
    [1, 'garbage'],
    [1, 'bad-request-line'],
    [1, 'huge-headers'],
    [1, 'bad-length'],
    [1, 'chunked'],
  ])
  if (shape === 'garbage') return { cls: 'garbage', bytes: rng.bytes(rng.range(1, 2000)) }
  if (shape === 'bad-request-line') {
    const line = rng.pick([
      'GET',
      'GET /',
      'GET / HTTP/9.9',
      'GET / HTTP/1.1 x',
      '/ GET HTTP/1.1',
      'GET\t/\tHTTP/1.1',
      ' GET / HTTP/1.1',
    ])
    return { cls: 'bad-request-line', bytes: Buffer.from(`${line}\r\nHost: x\r\n\r\n`) }
  }
  const method = rng.weighted([
    [6, 'GET'],
    [6, 'POST'],
    [3, 'PUT'],
    [3, 'DELETE'],
    [3, rng.pick(methods)],
  ])
  const target = path(rng)
  const headers = [
    ['Host', '127.0.0.1'],
    ['Connection', 'close'],
  ]
  const auth = rng.weighted([
    [14, `Bearer ${adminToken}`],
    [1, undefined],
    [1, 'Bearer wrong'],
    [1, `Bearer ${adminToken}x`],
    [1, `bearer ${adminToken}`],
    [1, `Bearer ${'\u00e9'.repeat(adminToken.length)}`],
    [1, `Basic ${Buffer.from('a:b').toString('base64')}`],
    [1, 'Bearer '.repeat(2000)],
  ])
  if (auth !== undefined) headers.push(['Authorization', auth])
  const payload = body(rng, bodyLimit)
  if (payload.length > 0 || rng.chance(0.3)) headers.push(['Content-Type', rng.pick(contentTypes)])
  let framing = 'length'
  if (shape === 'huge-headers') {
    const many = rng.chance(0.5)
    for (let i = 0; i < (many ? rng.range(100, 3000) : 1); i++)
      headers.push([`X-Fuzz-${i}`, many ? 'v' : 'v'.repeat(rng.range(8000, 70_000))])
  }
  if (rng.chance(0.05)) headers.push([rng.pick(['X\u0000Y', 'Bad Header', ':', 'X-\u00e9']), 'v'])
  if (shape === 'chunked') framing = 'chunked'
  if (framing === 'chunked')
    headers.push(['Transfer-Encoding', rng.pick(['chunked', 'chunked, gzip', 'gzip'])])
  else if (shape === 'bad-length')
    headers.push([
      'Content-Length',
      rng.pick([
        '-1',
        'abc',
        `${payload.length + 10}`,
        `${payload.length} , ${payload.length + 1}`,
        '99999999999999999999',
      ]),
    ])
  else if (payload.length > 0 || method !== 'GET') headers.push(['Content-Length', String(payload.length)])
  const head = `${method} ${target} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`
  let rest = payload
  if (framing === 'chunked') {
    rest = Buffer.concat([
      Buffer.from(`${rng.pick([payload.length.toString(16), 'zz', '-1', 'fffffffffffff'])}\r\n`),
      payload,
      Buffer.from(rng.pick(['\r\n0\r\n\r\n', '\r\n', ''])),
    ])
  }
  const first = target.split('?')[0].split('/')[1] ?? ''
  const family = families.includes(first) ? first : first === '' ? '(root)' : 'other'
  const cls =
    shape === 'request' ? `${/^[A-Z]{1,8}$/.test(method) ? method : 'odd-method'} /${family}` : shape
  return { cls, bytes: Buffer.concat([Buffer.from(head, 'latin1'), rest]), method, target }
}
