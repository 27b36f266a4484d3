import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import { RequestLogger } from './request-logger.js'

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
 * `reply.log` are its children with the request id, made by the child-logger
 * factory only when the request logs (RequestLogger), so route log levels
 * apply as usual.
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
  const app = Fastify({
    childLoggerFactory: (_none, bindings, opts) =>
      new RequestLogger(log, bindings, opts) as unknown as FastifyBaseLogger,
    logController: new ErrorsOnlyLogController(),
    pluginTimeout,
  })
  app.log = log as FastifyBaseLogger
  return app
}
