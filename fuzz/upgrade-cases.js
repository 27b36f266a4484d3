// Upgrade-socket messages: valid frames of every type (encodeFrame), then broken one way
// (header fields, bytes, truncation, bodies of the wrong shape) and a descriptor count.
import { encodeFrame, frameTypes, maxListeners } from '../dist/upgrade/frame.js'

const headerBytes = 12
const maxMessage = 65536

function validBody(rng, type) {
  const pid = rng.pick([process.pid, 1, 2 ** 22])
  switch (type) {
    case 'hello':
      return { pid, modules: rng.pick([[], ['fuzzmod'], ['nosuch'], ['fuzzmod', 'x']]) }
    case 'refuse':
    case 'nak':
      return { pid, code: 'NYALA_ERR_X', reason: 'fuzz' }
    case 'ack':
      return { pid, adopted: ['http'] }
    case 'listeners':
      return { pid, listeners: [{ name: 'http', family: 'IPv4', address: '127.0.0.1', port: 1 }] }
    default:
      return { pid }
  }
}

function badBody(rng) {
  return rng.pick([
    'null',
    '[]',
    '"x"',
    '1',
    '{',
    '',
    '{"pid":0}',
    '{"pid":-1,"modules":[]}',
    '{"pid":1.5,"modules":[]}',
    '{"pid":"1","modules":[]}',
    '{"pid":1,"modules":[1,2]}',
    '{"pid":1,"modules":"fuzzmod"}',
    '{"pid":1,"listeners":[{"name":"HTTP"}]}',
    '{"pid":1,"listeners":[{"name":"http","family":"IPv4","address":"x","port":1},{"name":"http","family":"IPv4","address":"x","port":1}]}',
    `{"pid":1,"listeners":${JSON.stringify(Array.from({ length: maxListeners + 1 }, (_, i) => ({ name: `l${i}`, family: 'IPv4', address: 'x', port: i })))}}`,
    '{"pid":1,"__proto__":{"modules":["x"]}}',
    `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
    `{"pid":1,"modules":["${'m'.repeat(60_000)}"]}`,
    '\u0000\u0000',
  ])
}

/** One message: { cls, data, fdCount }; `fdCount` descriptors go with it (none that listen). */
export function upgradeCase(rng) {
  const type = rng.pick(Object.keys(frameTypes))
  const how = rng.pick([
    'flip',
    'truncate',
    'extend',
    'magic',
    'version',
    'type',
    'fds',
    'length',
    'body',
    'body',
    'valid',
  ])
  let body = validBody(rng, type)
  let fdCount = type === 'listeners' ? body.listeners.length : 0
  let data = encodeFrame(type, body, fdCount)
  if (how === 'flip')
    for (let n = rng.range(1, 4); n > 0; n--) data[rng.int(data.length)] ^= rng.range(1, 255)
  if (how === 'truncate') data = data.subarray(0, rng.range(1, data.length - 1))
  if (how === 'extend') data = Buffer.concat([data, rng.bytes(rng.range(1, 64))])
  if (how === 'magic') data.write(rng.pick(['NYUQ', 'nyup', '\0\0\0\0', 'HTTP']), 0, 'latin1')
  if (how === 'version') data.writeUInt8(rng.pick([0, 2, 255]), 4)
  if (how === 'type') data.writeUInt8(rng.pick([0, 7, 8, 128, 255]), 5)
  if (how === 'fds') fdCount = rng.pick([0, 1, 2, 16, 32].filter((n) => n !== fdCount))
  if (how === 'fds' && rng.chance(0.5)) data.writeUInt16BE(rng.pick([fdCount, 0xffff]), 6)
  if (how === 'length')
    data.writeUInt32BE(rng.pick([0, 1, data.length, data.length - headerBytes + 1, 0xffffffff]), 8)
  if (how === 'body') {
    const json = Buffer.from(badBody(rng), 'utf8')
    data = Buffer.concat([data.subarray(0, headerBytes), json])
    data.writeUInt32BE(json.length, 8)
    body = undefined
  }
  if (data.length === 0) data = Buffer.from('N')
  if (data.length > maxMessage) data = data.subarray(0, maxMessage)
  return { cls: `${type} ${how}`, type, how, data, fdCount }
}
