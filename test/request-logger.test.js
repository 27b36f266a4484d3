import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import test from 'node:test'
import pino from 'pino'
import { RequestLogger } from '../dist/runtime/request-logger.js'

/** A module logger writing into `lines`, counting the children made of it. */
function moduleLogger(level = 'info') {
  const lines = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk))
      cb()
    },
  })
  const log = pino({ level }, sink).child({ module: 'm', generation: 1 })
  const made = { children: 0 }
  const original = log.child
  // children of children inherit this, so count them all, each on its own parent
  log.child = function (...args) {
    made.children++
    return original.apply(this, args)
  }
  return { log, lines, made }
}

test('a request that does not log makes no child; one that logs writes with the request id', () => {
  const { log, lines, made } = moduleLogger('info')
  const quiet = new RequestLogger(log, { reqId: 'req-1' }, {})
  for (const m of ['info', 'error', 'debug', 'trace', 'fatal', 'warn', 'child'])
    assert.equal(typeof quiet[m], 'function', `${m} is a function, as Fastify checks`)
  quiet.debug('below the level')
  quiet.trace({ a: 1 }, 'below too')
  assert.equal(quiet.level, 'info')
  assert.equal(quiet.isLevelEnabled('debug'), false)
  assert.equal(made.children, 0)
  assert.equal(lines.length, 0)

  const loud = new RequestLogger(log, { reqId: 'req-2' }, {})
  loud.info({ marker: 1 }, 'hello %s', 'world')
  loud.error(new Error('boom'))
  assert.equal(made.children, 1, 'one child, made on the first write')
  assert.deepEqual(
    lines.map((l) => [l.level, l.module, l.reqId, l.msg, l.marker]),
    [
      [30, 'm', 'req-2', 'hello world', 1],
      [50, 'm', 'req-2', 'boom', undefined],
    ],
  )
  assert.equal(lines[1].err.message, 'boom')
  assert.equal(loud.bindings().reqId, 'req-2')
})

test('a route log level applies; the rest of the pino API reaches the real child', () => {
  const { log, lines } = moduleLogger('info')
  const routed = new RequestLogger(log, { reqId: 'req-3' }, { level: 'error' })
  assert.equal(routed.level, 'error')
  routed.info('dropped by the route level')
  routed.error('kept')
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['kept'],
  )

  const other = new RequestLogger(log, { reqId: 'req-4' }, {})
  assert.equal(other.levels.values.info, 30, 'levels comes from the child')
  assert.equal(typeof other.version, 'string')
  let changed
  other.on('level-change', (lvl) => {
    changed = lvl
  })
  other.level = 'debug'
  assert.equal(changed, 'debug')
  other.debug('now on')
  assert.equal(lines.at(-1).msg, 'now on')
  assert.equal(lines.at(-1).reqId, 'req-4')
  const grandchild = other.child({ step: 'x' })
  grandchild.warn('from a child of the request logger')
  assert.deepEqual([lines.at(-1).reqId, lines.at(-1).step], ['req-4', 'x'])
  assert.equal(RequestLogger.prototype.levels, undefined, 'the prototype itself reaches no logger')
})
