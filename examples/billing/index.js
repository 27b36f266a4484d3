'use strict'
const { formatAmount } = require('./lib/money')

module.exports = {
  async register(app, ctx) {
    const { store } = ctx.use('core')
    const customers = ctx.use('customers')
    const currency = ctx.config.currency ?? 'EUR'
    app.get('/invoices', async () =>
      store.all('invoices').map((inv) => ({
        ...inv,
        customer: customers.byId(inv.customerId)?.name,
        total: formatAmount(inv.cents, currency),
      })),
    )
    app.post('/invoices', async (req, reply) => {
      const { customerId, cents } = req.body ?? {}
      if (!customers.byId(customerId)) return reply.code(400).send({ error: `no customer ${customerId}` })
      const id = store.insert('invoices', { customerId, cents })
      return reply.code(201).send({ id })
    })
  },
}
