import type { Quote } from './lib/quote.js'
import { pick } from './lib/quote.js'

interface Ctx {
  readonly generation: number
}

interface App {
  get(path: string, handler: (req: { query: Record<string, string | undefined> }) => Promise<unknown>): void
}

export async function register(app: App, ctx: Ctx): Promise<void> {
  app.get(
    '/',
    async (req): Promise<Quote & { generation: number }> => ({
      ...pick(Number(req.query.n ?? 0)),
      generation: ctx.generation,
    }),
  )
  // loaded on first use, through the bundle
  app.get('/count', async () => ({ count: (await import('./lib/all.js')).all.length }))
}
