import { timingSafeEqual } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import path from 'node:path'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { placeDeploy, removeIfSame, stagedModuleName } from '../bundle/staged-file.js'
import { unknownModule } from '../config/unknown-module.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { ReloadResult } from '../reload/change.js'
import type { AdminHost, AdminReloader } from './admin-host.js'
import { foreignOrigin } from './admin-origin.js'
import { isConsoleAsset, registerConsole } from './console-routes.js'
import type { ConsoleModule } from './console-view.js'
import { Metrics } from './metrics.js'
import { type MetricsJson, mergeWorkerMetrics } from './metrics-merge.js'

function sendError(reply: FastifyReply, err: NyalaError, status = err.statusCode) {
  return reply.code(status).send({ statusCode: status, ...err.toJSON() })
}

/** Longest path quoted in an error: a 100 kB URL is not worth echoing whole. */
function shortPath(url: string): string {
  return url.length > 200 ? `${url.slice(0, 200)}…` : url
}

/**
 * Every answer the admin API gives carries a `NYALA_ERR_*` code, including Fastify's
 * own refusals (an unparsable JSON body, a body over its limit, an unknown content
 * type, a bad URL): those keep Fastify's 4xx status and name its `FST_ERR_*` code as
 * `fastifyCode`, under NYALA_ERR_ADMIN_REQUEST. Anything else that is not a Nyala
 * error is a fault of the host, NYALA_ERR_ADMIN_INTERNAL (500).
 */
function sendAnyError(req: FastifyRequest, reply: FastifyReply, err: unknown) {
  if (isNyalaError(err)) return sendError(reply, err)
  const status = (err as { statusCode?: unknown }).statusCode
  const fastifyCode = (err as { code?: unknown }).code
  const where = { method: req.method, path: shortPath(req.url), reason: reasonOf(err) }
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const coded = nyalaError('NYALA_ERR_ADMIN_REQUEST', where)
    return reply.code(status).send({
      statusCode: status,
      ...coded.toJSON(),
      ...(typeof fastifyCode === 'string' ? { fastifyCode } : {}),
    })
  }
  return sendError(reply, nyalaError('NYALA_ERR_ADMIN_INTERNAL', where, err))
}

/** How long a refused connection is read from after its answer, before it is closed. */
const lingerMs = 2000
const lingering = new WeakSet<Socket>()

/**
 * A request Node's HTTP parser refuses (a broken request line, headers past its
 * limit) never reaches Fastify: answered here, coded, and the connection closed.
 * Bound to the admin listener's `clientError` (src/host.ts).
 */
export function answerAdminClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset connection has no one to answer; one answered already is lingering (below), and
  // Node's parser reports each further chunk of it as another error
  if (err.code === 'ECONNRESET' || socket.destroyed || lingering.has(socket)) return
  const status =
    err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
  // a response already under way on this connection cannot be followed by another
  const busy = (socket as unknown as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent
  if (socket.writable && !busy) {
    const coded = nyalaError('NYALA_ERR_ADMIN_REQUEST', {
      method: '-',
      path: '-',
      reason: `${err.code ?? 'parse error'}: ${err.message}`,
    })
    const body = JSON.stringify({ statusCode: status, ...coded.toJSON(), error: STATUS_CODES[status] })
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    )
    // a lingering close: a client still sending its request (a body behind headers past the
    // limit) would get a reset instead of this answer if the socket closed with bytes unread
    // (found by fuzzing); read on and drop them until the client ends, for at most a moment
    lingering.add(socket)
    socket.resume()
    socket.once('end', () => socket.destroy())
    setTimeout(() => socket.destroy(), lingerMs).unref()
    return
  }
  socket.destroy()
}

/**
 * HTTP status of a reload result: 200 reloaded or unchanged, 422 failed. A failed one carries
 * its code as `error.code`, not at the top: a top-level `code` is what `nyala reload` and
 * `nyala deploy` take for a refused call (src/cli/admin-client.ts), not for a verdict.
 */
function replyReload(reply: FastifyReply, result: ReloadResult) {
  return reply.code(result.result === 'failed' ? 422 : 200).send(result)
}

/**
 * The admin API, on its own listener: module table, reloads, reload
 * registration, health, readiness, Prometheus metrics, a server-sent event
 * stream of reload phases, and the operator console (`/`). With `admin.token`
 * set, every route but the health probes and the console's static files
 * needs `Authorization: Bearer <token>`.
 */
export async function createAdminApp(
  host: AdminHost,
  reloader: AdminReloader,
): Promise<{ app: FastifyInstance; endStreams: () => void }> {
  const app = Fastify({
    logger: false,
    // a URL that does not decode, a parameter past its length: coded like every other refusal
    frameworkErrors: (err, req, reply) => sendAnyError(req, reply, err),
  })
  const streams = new Set<() => void>()
  // a supervisor's records serve nothing: the request figures are its workers'
  const metrics = new Metrics(reloader.events, host.runtime.metrics ? () => [] : () => host.modules.values())
  // the console's history: the last 100 events, so a page opened after a reload still shows it
  const recent: unknown[] = []
  reloader.events.on((e) => {
    recent.push(e)
    if (recent.length > 100) recent.shift()
  })
  const token = host.options.admin.token
  const expected = Buffer.from(token)

  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0] ?? req.url
    if (path === '/health' || path === '/ready' || isConsoleAsset(path)) return
    if (!token) {
      const foreign = foreignOrigin(req.headers, host.options.admin.host)
      if (foreign)
        return sendError(
          reply,
          nyalaError('NYALA_ERR_ADMIN_FOREIGN_ORIGIN', { method: req.method, path: req.url, ...foreign }),
        )
      return
    }
    // the scheme's name is case-insensitive (RFC 9110, 11.1): "bearer" is "Bearer"
    const given = Buffer.from(/^bearer +(.*)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return sendError(
        reply,
        nyalaError('NYALA_ERR_ADMIN_UNAUTHORIZED', { method: req.method, path: shortPath(req.url) }),
      )
    }
  })
  app.setErrorHandler((err: unknown, req, reply) => sendAnyError(req, reply, err))
  app.setNotFoundHandler((req, reply) =>
    sendError(
      reply,
      nyalaError('NYALA_ERR_ADMIN_NOT_FOUND', { method: req.method, path: shortPath(req.url) }),
    ),
  )

  const describe = (name: string) => host.describe().find((m) => m.name === name)
  const known = (name: string) => {
    if (!host.modules.has(name)) throw unknownModule(name, host.modules.keys())
  }

  app.get('/modules', async () => ({
    modules: host.describe().map((m) => ({
      ...m,
      registered: !reloader.selection.isUnregistered(String(m.name)),
    })),
  }))
  // one row per process serving modules: the workers, or this process when it serves alone
  app.get('/workers', async () => {
    if (host.runtime.workers) return { workers: await host.runtime.workers() }
    const generations: Record<string, number> = {}
    let inflight = 0
    let served = 0
    for (const r of host.modules.values()) {
      if (r.state === 'running' && r.generation) generations[r.name] = r.generation.number
      inflight += r.generation?.inflight ?? 0
      served += r.servedBefore + (r.generation?.served ?? 0)
    }
    const self = { worker: 0, pid: process.pid, state: 'serving', restarts: 0 }
    return { workers: [{ ...self, rss: process.memoryUsage.rss(), inflight, served, generations }] }
  })
  app.get<{ Params: { name: string } }>('/modules/:name', async (req) => {
    known(req.params.name)
    return { ...describe(req.params.name), registered: !reloader.selection.isUnregistered(req.params.name) }
  })
  app.post<{ Params: { name: string }; Querystring: { force?: string } }>(
    '/modules/:name/reload',
    async (req, reply) => {
      const force = req.query.force === 'true' || req.query.force === '1'
      return replyReload(reply, await reloader.reloadModule(req.params.name, force))
    },
  )
  app.post('/reload', async (_req, reply) => replyReload(reply, await reloader.rescan('admin')))
  app.post<{ Params: { name: string } }>('/modules/:name/unregister', async (req) => {
    known(req.params.name)
    reloader.selection.unregister(req.params.name)
    host.log.info({ module: req.params.name }, `${req.params.name} unregistered from reloading`)
    return { name: req.params.name, registered: false }
  })
  app.post<{ Params: { name: string } }>('/modules/:name/register', async (req) => {
    known(req.params.name)
    reloader.selection.register(req.params.name)
    host.log.info({ module: req.params.name }, `${req.params.name} registered for reloading`)
    return { name: req.params.name, registered: true }
  })
  // `nyala deploy --admin URL`: the bundle's bytes land in the staging directory as a local
  // deploy would place them; the watcher (stagingDirectory) gives the verdict on GET /events
  // the parser keeps the listener's limit (1 MiB): a parser's own limit is what every route
  // without one of its own takes, and every route would then read bundle-sized bodies
  const bundleLimit = host.options.bundleMaxBytes
  app.addContentTypeParser(
    ['application/octet-stream', 'application/zip'],
    { parseAs: 'buffer' },
    (_req, body, done) => done(null, body),
  )
  app.put<{ Params: { file: string }; Body: Buffer }>(
    '/deploy/:file',
    { bodyLimit: bundleLimit },
    async (req, reply) => {
      const module = stagedModuleName(req.params.file)
      if (!Buffer.isBuffer(req.body)) {
        throw nyalaError('NYALA_ERR_DEPLOY_BODY', {
          file: req.params.file,
          got: req.headers['content-type'] ?? 'no body',
        })
      }
      const file = await placeDeploy(host.options.autoReload.stagingDir, req.params.file, req.body, {
        sync: host.options.autoReload.fsync,
      })
      host.log.info({ module, file, bytes: req.body.length }, `deploy: ${module} placed in ${file}`)
      return reply.code(202).send({ file, module })
    },
  )
  // a refused deploy cleans up after itself; `sha256` keeps a newer copy of someone else
  app.delete<{ Params: { file: string }; Querystring: { sha256?: string } }>('/deploy/:file', async (req) => {
    stagedModuleName(req.params.file)
    const file = path.join(host.options.autoReload.stagingDir, req.params.file)
    return { file, removed: await removeIfSame(file, req.query.sha256 ?? '') }
  })
  registerConsole(app, {
    records: () => host.modules.values(),
    stats: host.runtime.stats && (() => host.runtime.stats!()),
    // the rows of GET /modules
    modules: () =>
      host.describe().map((m) => ({
        ...m,
        registered: !reloader.selection.isUnregistered(String(m.name)),
      })) as unknown as ConsoleModule[],
    // the page's first view carries what GET /modules would answer this same request
    mayShow: (req) => !token && !foreignOrigin(req.headers, host.options.admin.host),
  })
  app.get('/health', async () => ({ status: 'ok', pid: process.pid, uptime: process.uptime() }))
  app.get('/ready', async (_req, reply) => {
    const modules = [...host.modules.values()]
    const running = modules.filter((m) => m.state === 'running').length
    const ready = host.address !== undefined
    return reply.code(ready ? 200 : 503).send({ ready, modules: modules.length, running })
  })
  app.get('/metrics', async (_req, reply) => {
    const fromWorkers = await host.runtime.metrics?.()
    if (!fromWorkers) return reply.type(metrics.contentType).send(await metrics.render())
    const own = { worker: undefined, metrics: await metrics.registry.getMetricsAsJSON() }
    const parts = fromWorkers.map((w) => ({ worker: String(w.worker), metrics: w.metrics as MetricsJson }))
    return reply.type(metrics.contentType).send(await mergeWorkerMetrics([own, ...parts]))
  })
  app.get('/events/recent', async () => ({ events: recent }))
  app.get('/events', (req, reply) => {
    // HEAD: the stream's head and nothing else (Node holds a HEAD answer's headers until it
    // ends, so a stream that never ends left a HEAD request waiting forever; found by fuzzing)
    if (req.method === 'HEAD')
      return reply.type('text/event-stream').header('cache-control', 'no-cache').send()
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    res.write(': nyala reload events\n\n')
    const off = reloader.events.on((e) => {
      res.write(`event: ${e.phase}\ndata: ${JSON.stringify(e)}\n\n`)
    })
    // a proxy in between must not cut an idle stream
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000)
    const end = () => {
      off()
      clearInterval(ping)
      streams.delete(end)
      res.end()
    }
    streams.add(end)
    req.raw.on('close', end)
  })
  await app.ready()
  // event streams never go idle: shutdown ends them rather than waiting out the grace period
  return {
    app,
    endStreams: () => {
      for (const end of [...streams]) end()
    },
  }
}
