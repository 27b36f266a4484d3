import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import test from 'node:test'
import Fastify from 'fastify'
import pino from 'pino'
import { createModuleApp } from '../dist/runtime/module-app.js'

/** A pino logger writing parsed records into `lines`. */
function sinkLogger(level = 'info') {
  const lines = []
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(chunk))
      cb()
    },
  })
  return { log: pino({ level }, sink).child({ module: 'm' }), lines }
}

test('module requests: req.log and reply.log are the module logger with the request id and route options', async () => {
  const { log, lines } = sinkLogger('info')
  const app = createModuleApp(log, false)
  app.register(
    async (scoped) => {
      scoped.get('/same', async (req, reply) => ({
        same: req.log === reply.log,
        own: Object.hasOwn(req, 'log'),
      }))
      scoped.get('/hello', async (req) => {
        req.log.info({ marker: 1 }, 'hello')
        return { ok: true }
      })
      scoped.get('/quiet', { logLevel: 'warn' }, async (req) => {
        req.log.info('below the route level')
        req.log.warn('at the route level')
        return { ok: true }
      })
      scoped.get('/secret', { logSerializers: { user: (u) => ({ name: u.name }) } }, async (req) => {
        req.log.info({ user: { name: 'ada', password: 'hunter2' } }, 'serialized')
        return { ok: true }
      })
      scoped.register(async (tagged) => {
        tagged.addHook('onRequest', async (req) => {
          req.log = req.log.child({ tag: 'from a hook' })
        })
        tagged.get('/tagged', async (_req, reply) => {
          reply.log.info('tagged')
          return { ok: true }
        })
      })
    },
    { prefix: '/p' },
  )
  await app.ready()
  assert.deepEqual((await app.inject('/p/same')).json(), { same: true, own: false })
  for (const path of ['/p/hello', '/p/quiet', '/p/secret', '/p/tagged'])
    assert.equal((await app.inject(path)).statusCode, 200, path)
  const by = (msg) => lines.find((l) => l.msg === msg)
  assert.equal(by('hello').module, 'm')
  assert.equal(by('hello').marker, 1)
  assert.match(String(by('hello').reqId), /^req-/)
  assert.equal(by('below the route level'), undefined, 'route logLevel applies')
  assert.match(String(by('at the route level').reqId), /^req-/)
  assert.deepEqual(by('serialized').user, { name: 'ada' }, 'route logSerializers apply')
  assert.equal(by('tagged').tag, 'from a hook', 'a logger assigned to req.log is the one used, reply.log too')
  assert.match(String(by('tagged').reqId), /^req-/)
  await app.close()
})

test('other Fastify instances in the process keep stock behaviour', async () => {
  const plain = Fastify()
  plain.get('/', async (req, reply) => {
    // stock Fastify without a logger: a no-op logger with the usual methods
    for (const m of ['info', 'error', 'warn', 'debug', 'trace', 'fatal', 'child'])
      assert.equal(typeof req.log[m], 'function')
    req.log.info('goes nowhere')
    return { same: req.log === reply.log }
  })
  assert.deepEqual((await plain.inject('/')).json(), { same: true })

  const { log, lines } = sinkLogger('info')
  const logged = Fastify({ loggerInstance: log })
  logged.get('/', async (req) => {
    req.log.info('from a logged instance')
    return { ok: true }
  })
  assert.equal((await logged.inject('/')).statusCode, 200)
  const line = lines.find((l) => l.msg === 'from a logged instance')
  assert.match(String(line?.reqId), /^req-/)
  assert.ok(
    lines.some((l) => l.msg === 'request completed'),
    'its request logging is untouched',
  )
  await Promise.all([plain.close(), logged.close()])
})
