import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { nyalaError, reasonOf } from '../errors.js'

export interface ListenOptions {
  readonly host: string
  readonly port: number
  /** @default 511 */
  readonly backlog?: number
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
    server.listen({ host: opts.host, port: opts.port, backlog: opts.backlog ?? 511 }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  return { server, address: server.address() as AddressInfo }
}

/** Stops accepting, closes idle keep-alive connections and waits for the rest up to `ms`. */
export async function closeServer(server: Server, ms: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  const timer = setTimeout(() => server.closeAllConnections(), ms)
  timer.unref()
  await closed
  clearTimeout(timer)
}
