import type { FastifyInstance, RouteHandlerMethod } from 'fastify'
import { routeId, runningSlots, slot } from './running-code.js'

/**
 * Marks every route handler of a generation's Fastify instance: while the
 * handler's synchronous part runs, the running-code slots name this
 * generation and the route, so the watchdog can say which route holds a
 * stalled event loop. Four stores before the handler and two after (with
 * try/finally, so a handler that throws leaves no stale mark).
 */
export function markRoutes(app: FastifyInstance, code: number): void {
  app.addHook('onRoute', (route) => {
    const handler = route.handler as (this: FastifyInstance, ...args: unknown[]) => unknown
    const methods = Array.isArray(route.method) ? route.method.join(',') : route.method
    const id = routeId(code, `${methods} ${route.url}`)
    const marked = function (this: FastifyInstance, request: unknown, reply: unknown): unknown {
      const slots = runningSlots
      const outerCode = slots[slot.code] as number
      const outerRoute = slots[slot.route] as number
      slots[slot.code] = code
      slots[slot.route] = id
      slots[slot.lastCode] = code
      slots[slot.lastRoute] = id
      try {
        return handler.call(this, request, reply)
      } finally {
        slots[slot.code] = outerCode
        slots[slot.route] = outerRoute
      }
    }
    route.handler = marked as RouteHandlerMethod
  })
}
