import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ModuleRecord } from '../runtime/module-record.js'
import { type ConsoleAsset, consolePolicy, loadConsoleAssets } from './console-assets.js'

/** Paths the console serves without the admin token: static files, no data (the page asks for the token). */
export const isConsoleAsset = (path: string): boolean => path === '/' || path.startsWith('/console/')

/** The operator console (the page at `/`, its files) and `GET /stats`, the figures it charts. */
export function registerConsole(app: FastifyInstance, records: () => Iterable<ModuleRecord>): void {
  const assets = loadConsoleAssets()
  const send = (req: FastifyRequest, reply: FastifyReply, a: ConsoleAsset) => {
    reply
      .header('content-type', a.type)
      .header('etag', a.etag)
      .header('vary', 'accept-encoding')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    if (a.path === '/')
      reply.header('content-security-policy', consolePolicy).header('referrer-policy', 'no-referrer')
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send()
    const accepted = String(req.headers['accept-encoding'] ?? '')
    if (/\bbr\b/.test(accepted)) return reply.header('content-encoding', 'br').send(a.br)
    if (/\bgzip\b/.test(accepted)) return reply.header('content-encoding', 'gzip').send(a.gzip)
    return reply.send(a.identity)
  }
  app.get('/', (req, reply) => send(req, reply, assets.get('/')!))
  app.get<{ Params: { file: string } }>('/console/:file', (req, reply) => {
    const a = assets.get(`/console/${req.params.file}`)
    if (!a) return reply.code(404).send({ statusCode: 404, message: `no console file ${req.params.file}` })
    return send(req, reply, a)
  })
  app.get('/stats', async () => {
    const now = performance.now()
    const modules: Record<string, unknown> = {}
    for (const r of records()) modules[r.name] = r.stats.minute(now)
    return { at: new Date().toISOString(), modules }
  })
}
