import { createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { nyalaError } from '../errors.js'
import { type ModuleRecord, requestCounts } from '../runtime/module-record.js'
import type { MinuteStats } from '../runtime/request-stats.js'
import { type ConsoleAsset, loadConsoleAssets } from './console-assets.js'
import { type PageEncoding, pageInParts } from './console-parts.js'
import {
  type ConsoleModule,
  esc,
  graphKey,
  graphSvg,
  moreRows,
  summaryOf,
  tableRows,
} from './console-view.js'

/** Paths the console serves without the admin token: the page (data only when no token is set) and its files. */
export const isConsoleAsset = (path: string): boolean => path === '/' || path.startsWith('/console/')

/** What the console reads of the host. */
export interface ConsoleSource {
  readonly records: () => Iterable<ModuleRecord>
  /** The rows of `GET /modules`. */
  readonly modules: () => readonly ConsoleModule[]
  /**
   * Whether `GET /` may carry the modules: only when the admin API would answer this request
   * without a token (no `admin.token`, not a page of another site). Otherwise the page comes
   * empty and its script asks for the token, as for every other call.
   */
  readonly mayShow: (req: FastifyRequest) => boolean
  /** With worker processes: the figures of every worker added up (the records here serve nothing). */
  readonly stats?: (() => Promise<ReadonlyMap<string, MinuteStats>>) | undefined
}

async function statsOf(source: ConsoleSource): Promise<ReadonlyMap<string, MinuteStats>> {
  if (source.stats) return source.stats()
  const now = performance.now()
  return new Map([...source.records()].map((r) => [r.name, r.stats.minute(now)]))
}

/**
 * The operator console: the page at `/` with its first view drawn by the admin listener (rows
 * and graph in the HTML: the first paint needs no script and no API round trip), its files,
 * `GET /overview` (modules, figures and, when it changed, the graph: one request per update of
 * the page) and `GET /stats` (the figures alone).
 */
export function registerConsole(app: FastifyInstance, source: ConsoleSource): void {
  const { assets, page, policy } = loadConsoleAssets()
  // the graph changes only with a reload: drawn once per change, not per page view or update
  let drawn = { key: '', svg: '' }
  const graphOf = (modules: readonly ConsoleModule[]) => {
    const key = graphKey(modules)
    if (key !== drawn.key) drawn = { key, svg: graphSvg(modules, key) }
    return drawn
  }
  const common = (reply: FastifyReply, type: string, etag: string) =>
    reply
      .header('content-type', type)
      .header('etag', etag)
      .header('vary', 'accept-encoding')
      .header('x-content-type-options', 'nosniff')
  const send = (req: FastifyRequest, reply: FastifyReply, a: ConsoleAsset) => {
    common(reply, a.type, a.etag).header('cache-control', 'public, max-age=31536000, immutable')
    if (req.headers['if-none-match'] === a.etag) return reply.code(304).send()
    const accepted = String(req.headers['accept-encoding'] ?? '')
    if (/\bbr\b/.test(accepted)) return reply.header('content-encoding', 'br').send(a.br)
    if (/\bgzip\b/.test(accepted)) return reply.header('content-encoding', 'gzip').send(a.gzip)
    return reply.send(a.identity)
  }
  app.get('/', async (req, reply) => {
    const parts = (await render(page, source, req, graphOf)).map((part) => Buffer.from(part))
    const hash = createHash('sha256')
    for (const part of parts) hash.update(part)
    const etag = `"${hash.digest('hex').slice(0, 16)}"`
    // the page changes with every reload: revalidated each time, never cached as is
    common(reply, 'text/html; charset=utf-8', etag)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', policy)
      .header('referrer-policy', 'no-referrer')
    if (req.headers['if-none-match'] === etag) return reply.code(304).send()
    const accepted = String(req.headers['accept-encoding'] ?? '')
    const encoding: PageEncoding = /\bbr\b/.test(accepted)
      ? 'br'
      : /\bgzip\b/.test(accepted)
        ? 'gzip'
        : undefined
    if (encoding) reply.header('content-encoding', encoding)
    // in two parts, the first screen first (src/http/console-parts.ts)
    return reply.send(pageInParts(parts, encoding))
  })
  app.get<{ Params: { file: string } }>('/console/:file', (req, reply) => {
    const a = assets.get(`/console/${req.params.file}`)
    if (!a)
      throw nyalaError('NYALA_ERR_ADMIN_NOT_FOUND', {
        method: req.method,
        path: `/console/${req.params.file}`,
      })
    return send(req, reply, a)
  })
  // the console's poll between its full updates: the figures and the request counts, what
  // changes with every request, without describing every module (docs/console-render.md)
  app.get('/stats', async () => ({
    at: new Date().toISOString(),
    modules: Object.fromEntries(await statsOf(source)),
    counts: Object.fromEntries([...source.records()].map((r) => [r.name, requestCounts(r)])),
  }))
  // `graph`: the key of the drawing the page has; the drawing is sent only when it differs
  app.get<{ Querystring: { graph?: string } }>('/overview', async (req) => {
    const modules = source.modules()
    const graph = graphOf(modules)
    return {
      at: new Date().toISOString(),
      modules,
      stats: Object.fromEntries(await statsOf(source)),
      graphKey: graph.key,
      ...(req.query.graph === graph.key ? {} : { graph: graph.svg }),
    }
  })
}

/**
 * The page, with the modules drawn in when this request may see them, in two parts: up to the
 * first screen's rows and the table's end, and the other rows (as text in a `<noscript>`, see
 * `moreRows`) with the rest of the page.
 */
async function render(
  page: string,
  source: ConsoleSource,
  req: FastifyRequest,
  graphOf: (modules: readonly ConsoleModule[]) => { svg: string },
): Promise<[string, string]> {
  // the template is cut before the values go in: nothing from a bundle can move the cut
  const [head = '', tail = ''] = page.split('{{rest}}')
  const fill = (view: { view: string; summary: string; graph: string; rows: string }, rest: string) => {
    const slots = (html: string) =>
      html.replace(/\{\{(view|summary|graph|rows)\}\}/g, (_, slot: keyof typeof view) => view[slot])
    return [slots(head), rest + slots(tail)] as [string, string]
  }
  if (!source.mayShow(req)) return fill({ view: 'empty', summary: 'Loading…', graph: '', rows: '' }, '')
  const modules = source.modules()
  const rows = tableRows(modules, await statsOf(source))
  return fill(
    {
      // the page shows every module before its script runs (read by app.js and the tests)
      view: 'server',
      summary: esc(summaryOf(modules)),
      graph: graphOf(modules).svg,
      rows: rows.first,
    },
    moreRows(rows.rest),
  )
}
