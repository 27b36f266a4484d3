import { timingSafeEqual } from 'node:crypto'
import path from 'node:path'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import { placeAtomically, removeIfSame, stagedModuleName } from '../bundle/staged-file.js'
import { isNyalaError, type NyalaError, nyalaError } from '../errors.js'
import type { NyalaHost } from '../host.js'
import type { ReloadResult } from '../reload/change.js'
import type { Reloader } from '../reload/reloader.js'
import { foreignOrigin } from './admin-origin.js'
import { isConsoleAsset, registerConsole } from './console-routes.js'
import { Metrics } from './metrics.js'

function sendError(reply: FastifyReply, err: NyalaError) {
  return reply.code(err.statusCode).send({ statusCode: err.statusCode, ...err.toJSON() })
}

/** HTTP status of a reload result: 200 reloaded or unchanged, 422 failed. */
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
  host: NyalaHost,
  reloader: Reloader,
): Promise<{ app: FastifyInstance; endStreams: () => void }> {
  const app = Fastify({ logger: false })
  const streams = new Set<() => void>()
  const metrics = new Metrics(reloader.events)
  // the console's history: the last 100 events, so a page opened after a reload still shows it
  const recent: unknown[] = []
  reloader.events.on((e) => {
    recent.push(e)
    if (recent.length > 100) recent.shift()
  })
  const token = host.options.admin.token
  const expected = Buffer.from(`Bearer ${token}`)

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
    const given = Buffer.from(req.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return sendError(
        reply,
        nyalaError('NYALA_ERR_ADMIN_UNAUTHORIZED', { method: req.method, path: req.url }),
      )
    }
  })
  app.setErrorHandler((err: unknown, _req, reply) => {
    if (isNyalaError(err)) return sendError(reply, err)
    const status = (err as { statusCode?: number }).statusCode ?? 500
    return reply.code(status).send({ statusCode: status, message: (err as Error).message })
  })

  const describe = (name: string) => host.describe().find((m) => m.name === name)
  const known = (name: string) => {
    if (!host.modules.has(name)) throw nyalaError('NYALA_ERR_UNKNOWN_MODULE', { module: name })
  }

  app.get('/modules', async () => ({
    modules: host.describe().map((m) => ({
      ...m,
      registered: !reloader.selection.isUnregistered(String(m.name)),
    })),
  }))
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
  const bundleLimit = host.options.bundleMaxBytes
  app.addContentTypeParser(
    ['application/octet-stream', 'application/zip'],
    { parseAs: 'buffer', bodyLimit: bundleLimit },
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
      const file = await placeAtomically(host.options.autoReload.stagingDir, req.params.file, req.body)
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
  registerConsole(app, () => host.modules.values())
  app.get('/health', async () => ({ status: 'ok', pid: process.pid, uptime: process.uptime() }))
  app.get('/ready', async (_req, reply) => {
    const modules = [...host.modules.values()]
    const running = modules.filter((m) => m.state === 'running').length
    const ready = host.address !== undefined
    return reply.code(ready ? 200 : 503).send({ ready, modules: modules.length, running })
  })
  app.get('/metrics', async (_req, reply) =>
    reply.type('text/plain; version=0.0.4').send(metrics.render(host.modules.values())),
  )
  app.get('/events/recent', async () => ({ events: recent }))
  app.get('/events', (req, reply) => {
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
