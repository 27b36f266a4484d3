import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import { lazyRequestLogs } from './request-log.js'

/**
 * Fastify's internal log lines for a module without `log.requests`: no line
 * per request, but errors still logged. Fastify's own `disableRequestLogging`
 * silences a route's 500 too, which nobody running a server wants.
 */
class ErrorsOnlyLogController extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(): void {}
  override routeNotFound(): void {}
}

/**
 * A module generation's own Fastify instance.
 *
 * Without `log.requests` (the default) it is made without a Fastify logger:
 * Fastify then skips its per-request response listeners and timers, which
 * exist for the "request completed" line (bench/dispatch-gap.md: ~7k
 * instructions a request, a tenth of what a bare Fastify request costs).
 * Logging is unchanged for the module: `app.log` (and the instances of its
 * plugins, which inherit it) is the module's logger, and `req.log` and
 * `reply.log` are its children with the request id and the route's log level,
 * made only when read (request-log.ts: Fastify's default child-logger factory
 * is kept, since any other one costs a validation per request).
 */
export function createModuleApp(log: Logger, logRequests: boolean): FastifyInstance {
  // the host bounds register itself, with module.start.timeout
  const pluginTimeout = 0
  if (logRequests) {
    return Fastify({
      loggerInstance: log as FastifyBaseLogger,
      logController: new LogController(),
      pluginTimeout,
    })
  }
  const app = Fastify({ logController: new ErrorsOnlyLogController(), pluginTimeout })
  app.log = log as FastifyBaseLogger
  lazyRequestLogs(app, log)
  return app
}
