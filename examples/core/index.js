'use strict'
// An in-memory store that other modules use through ctx.use('core'). Its tables
// survive a reload of core: handoff gives them to the next generation.
module.exports = {
  async register(app, ctx) {
    const tables = ctx.previous?.tables ?? new Map()
    this.tables = tables
    const store = {
      insert(table, row) {
        const rows = tables.get(table) ?? []
        const id = rows.length + 1
        rows.push({ id, ...row })
        tables.set(table, rows)
        return id
      },
      all(table) {
        return [...(tables.get(table) ?? [])]
      },
    }
    ctx.provide({ store, startedAt: new Date().toISOString() })
    app.get('/', async () => ({
      module: ctx.name,
      version: ctx.version,
      generation: ctx.generation,
      pid: process.pid,
      carriedOver: ctx.previous !== undefined,
    }))
  },
  handoff() {
    return { tables: this.tables }
  },
}
