import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { nyalaError, reasonOf } from '../errors.js'

export interface ListenOptions {
  readonly host: string
  readonly port: number
  /** @default 511 */
  readonly backlog?: number
  /**
   * An inherited listening socket to adopt instead of binding host:port (process
   * upgrade). Node ignores a `backlog` option next to `fd`, so it is passed apart.
   */
  readonly fd?: number
}

/** Creates an HTTP server for `handler` and listens; errors name host and port. */
export async function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  opts: ListenOptions,
): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer(handler)
  // above Node's 5 s default, so a load balancer's idle connections are not cut first
  server.keepAliveTimeout = 72_000
  server.headersTimeout = 75_000
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(nyalaError('NYALA_ERR_LISTEN', { host: opts.host, port: opts.port, reason: reasonOf(err) }, err))
    server.once('error', onError)
    const listening = () => {
      server.off('error', onError)
      resolve()
    }
    if (opts.fd !== undefined) server.listen({ fd: opts.fd }, opts.backlog ?? 511, listening)
    else server.listen({ host: opts.host, port: opts.port, backlog: opts.backlog ?? 511 }, listening)
  })
  return { server, address: server.address() as AddressInfo }
}

/**
 * Stops accepting and lets in-flight requests finish for up to `ms`. Requests
 * that arrive on open keep-alive connections meanwhile are answered with
 * `Connection: close`, and connections are closed as soon as they go idle, so
 * shutdown waits for the slowest request, not for keep-alive timeouts.
 */
export async function closeServer(server: Server, ms: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  const lastCall = (_req: IncomingMessage, res: ServerResponse) => {
    res.shouldKeepAlive = false
  }
  server.on('request', lastCall)
  server.closeIdleConnections()
  // a busy connection becomes idle after its response; Node gives no event for that
  const sweep = setInterval(() => server.closeIdleConnections(), 25)
  const deadline = setTimeout(() => server.closeAllConnections(), ms)
  await closed
  clearInterval(sweep)
  clearTimeout(deadline)
  server.off('request', lastCall)
}
