'use strict'
const seed = require('./seed.json')

module.exports = {
  async register(app, ctx) {
    const { store } = ctx.use('core')
    if (store.all('customers').length === 0) for (const c of seed) store.insert('customers', c)
    app.get('/', async () => store.all('customers'))
    app.get('/:id', async (req, reply) => {
      const found = store.all('customers').find((c) => c.id === Number(req.params.id))
      return found ?? reply.code(404).send({ error: `no customer ${req.params.id}` })
    })
    ctx.provide({ byId: (id) => store.all('customers').find((c) => c.id === id) })
  },
}
