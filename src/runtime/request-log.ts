import { createRequire } from 'node:module'
import type { ChildLoggerOptions, Logger } from 'pino'
import { RequestLogger } from './request-logger.js'

/*
 * `req.log` and `reply.log` of module requests, without any per-request cost.
 *
 * A Fastify instance made without a logger and with Fastify's own child-logger
 * factory takes a fast path: every request gets Fastify's shared no-op logger
 * and nothing is made. Any other set-up makes a child per request through
 * `createChildLogger`, which also validates the child: seven method names
 * looked up twice by a computed key, megamorphic loads that cost ~2k
 * instructions a request under callgrind (bench/dispatch-gap.md, round 3),
 * about 3 % of a whole bare Fastify request.
 *
 * So module instances take the fast path, and the logger is found when asked
 * for: `log` becomes an accessor on Fastify's base Request and Reply
 * prototypes. Fastify's constructors assign `this.log = <logger>` and the
 * setter keeps it. The getter returns what was kept unless it is Fastify's
 * no-op logger on a request of a Nyala module instance: then it makes (once)
 * a RequestLogger on the module's logger with the request id and the route's
 * log level and serializers, what Fastify would have passed a factory. So a
 * user's `request.log = request.log.child(...)` is kept, and instances with a
 * logger, or none, outside modules behave as in stock Fastify.
 *
 * The accessor sits on the base classes (shared by every instance in the
 * process) on purpose: Fastify hands undecorated contexts the base classes,
 * and a class per module would make Fastify's request path see a map per
 * module (megamorphic with more than four).
 *
 * This reaches into Fastify's internals (lib/request.js, lib/reply.js,
 * lib/symbols.js). test/request-log.test.js and the module-logging e2e test
 * check the behaviour, so a Fastify release that changes them fails there.
 */

const fastifyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'))

interface FastifyClass {
  readonly prototype: object
}

interface RouteContext {
  readonly server: Record<symbol, unknown>
  readonly logLevel?: string
  readonly logSerializers?: ChildLoggerOptions['serializers']
}

const BaseRequest = fastifyRequire('./lib/request.js') as FastifyClass
const BaseReply = fastifyRequire('./lib/reply.js') as FastifyClass
const { kRouteContext, kLogController } = fastifyRequire('./lib/symbols.js') as Record<string, symbol>
/**
 * Fastify gives an instance made without a logger a no-op logger from
 * abstract-logging, whose export is a getter making a new object each time:
 * they share one prototype, so one `info` function.
 */
const noopInfo = (fastifyRequire('abstract-logging') as { readonly info: unknown }).info

const kLog = Symbol('nyala.log')
/** On a module's root instance; its plugin instances inherit it (Object.create). */
const kModuleLogger = Symbol('nyala.moduleLogger')

type Holder = Record<symbol, unknown>

interface RequestLike extends Holder {
  readonly id: string
}

function keep(this: Holder, log: unknown): void {
  this[kLog] = log
}

/** Whether `log` is Fastify's no-op logger. */
function isNoop(log: unknown): boolean {
  return (log as { info?: unknown } | undefined)?.info === noopInfo
}

function requestLog(this: RequestLike): unknown {
  const kept = this[kLog]
  if (!isNoop(kept)) return kept
  const context = this[kRouteContext as symbol] as RouteContext
  const parent = context.server[kModuleLogger] as Logger | undefined
  if (parent === undefined) return kept
  const label =
    (context.server[kLogController as symbol] as { requestIdLogLabel?: string } | undefined)
      ?.requestIdLogLabel ?? 'reqId'
  // an empty level means "inherit" to Fastify too
  let options: ChildLoggerOptions | undefined
  if (context.logLevel) options = { level: context.logLevel }
  if (context.logSerializers) options = { ...options, serializers: context.logSerializers }
  const log = new RequestLogger(parent, { [label]: this.id }, options)
  this[kLog] = log
  return log
}

function replyLog(this: Holder & { readonly request: { readonly log: unknown } }): unknown {
  const kept = this[kLog]
  return isNoop(kept) ? this.request.log : kept
}

function install(): void {
  if (Object.hasOwn(BaseRequest.prototype, 'log')) return
  if (kRouteContext === undefined || kLogController === undefined)
    throw new Error(
      'fastify/lib/symbols.js lacks kRouteContext or kLogController: this Fastify release is not supported',
    )
  Object.defineProperty(BaseRequest.prototype, 'log', { get: requestLog, set: keep, configurable: true })
  Object.defineProperty(BaseReply.prototype, 'log', { get: replyLog, set: keep, configurable: true })
}

/**
 * Makes `req.log` of `app`'s requests (its plugins' too) a child of `logger`
 * with the request id, made when first read. `app` must have no Fastify
 * logger and keep Fastify's default child-logger factory, so that Fastify
 * takes its fast path.
 */
export function lazyRequestLogs(app: object, logger: Logger): void {
  install()
  ;(app as Holder)[kModuleLogger] = logger
}
