'use strict'
const { greet } = require('./lib/greet')
const pkg = require('./lib/info.json')

module.exports = {
  async register(app, ctx) {
    const page = ctx.resource('public/index.html')
    let ticks = 0
    // host-tracked: cleared when this generation stops, so it cannot pin old code
    ctx.setInterval(() => ticks++, 1000)
    app.get('/', async (req) => ({
      message: greet(req.query.name ?? 'world'),
      generation: ctx.generation,
      ticks,
      about: pkg.about,
    }))
    app.get('/page', async (_req, reply) => reply.type('text/html').send(page))
  },
  async stop(ctx) {
    ctx.log.info('hello stopping')
  },
}
