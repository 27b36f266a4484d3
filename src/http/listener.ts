import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { nyalaError, reasonOf } from '../errors.js'
import { TrackedResponse } from './tracked-response.js'

export interface ListenOptions {
  readonly host: string
  readonly port: number
  /**
   * Which listener, and the settings that move it, for the error when it cannot bind: a host
   * has two, and "address in use" alone does not say which port to change.
   * @default { name: 'listener', keys: 'host / port' }
   */
  readonly describe?: { readonly name: string; readonly keys: string }
  /** @default 511 */
  readonly backlog?: number
  /**
   * An inherited listening socket to adopt instead of binding host:port (process
   * upgrade). Node ignores a `backlog` option next to `fd`, so it is passed apart.
   */
  readonly fd?: number
  /**
   * Handles HTTP upgrades (WebSocket handshakes). Without it Node passes an
   * upgrade request to `handler` as a plain request.
   * @default undefined
   */
  readonly upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void
}

/** `http://host:port` of a listening address, with brackets around an IPv6 host. */
export function httpUrlOf(address: AddressInfo): string {
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
}

/** An HTTP server for `handler` with the host's timeouts, not listening yet. */
export function createHttpServer(
  handler: (req: IncomingMessage, res: TrackedResponse) => void,
  upgrade?: ListenOptions['upgrade'],
): Server {
  const server = createServer({ ServerResponse: TrackedResponse }, handler) as unknown as Server
  // above Node's 5 s default, so a load balancer's idle connections are not cut first
  server.keepAliveTimeout = 72_000
  server.headersTimeout = 75_000
  if (upgrade) server.on('upgrade', upgrade)
  return server
}

/** Creates an HTTP server for `handler` and listens; errors name host and port. */
export async function listen(
  handler: (req: IncomingMessage, res: TrackedResponse) => void,
  opts: ListenOptions,
): Promise<{ server: Server; address: AddressInfo }> {
  const server = createHttpServer(handler, opts.upgrade)
  return { server, address: await bind(server, opts) }
}

/**
 * A plain TCP listener whose accepted connections are not read from
 * (`pauseOnConnect`): a supervisor hands each one to a worker process, which
 * reads the request.
 */
export async function listenPaused(
  onConnection: (socket: Socket) => void,
  opts: ListenOptions,
): Promise<{ server: NetServer; address: AddressInfo }> {
  const server = new NetServer({ pauseOnConnect: true }, onConnection)
  return { server, address: await bind(server, opts) }
}

async function bind(server: NetServer, opts: ListenOptions): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        nyalaError(
          'NYALA_ERR_LISTEN',
          {
            listener: opts.describe?.name ?? 'listener',
            host: opts.host,
            port: opts.port,
            reason: reasonOf(err),
            keys: opts.describe?.keys ?? 'host / port',
          },
          err,
        ),
      )
    server.once('error', onError)
    const listening = () => {
      server.off('error', onError)
      resolve()
    }
    if (opts.fd !== undefined) server.listen({ fd: opts.fd }, opts.backlog ?? 511, listening)
    else server.listen({ host: opts.host, port: opts.port, backlog: opts.backlog ?? 511 }, listening)
  })
  return server.address() as AddressInfo
}

/**
 * Stops accepting and lets in-flight requests finish for up to `ms`.
 * Connections taken over by an upgrade (WebSockets) are not the server's to
 * close: they hold the returned promise until whoever took them ends them. Requests
 * that arrive on open keep-alive connections meanwhile are answered with
 * `Connection: close`, and connections are closed once they go idle, so
 * shutdown waits for the slowest request, not for keep-alive timeouts.
 *
 * Idle connections are only closed after `idleGraceMs`: closing one at once races
 * a client that is sending its next request on it right now, and that request is
 * reset (seen under load during a process upgrade). A client that is active
 * sends within the window, gets `Connection: close` and leaves on its own.
 */
export async function closeServer(
  server: Server,
  ms: number,
  idleGraceMs = Math.min(ms, 1000),
): Promise<void> {
  // net's close stops accepting; http's own close would also drop idle connections at once
  const closed = new Promise<void>((resolve) => NetServer.prototype.close.call(server, () => resolve()))
  await drainConnections(server, closed, ms, idleGraceMs)
}

/**
 * The connections a worker process was handed (they never passed through a
 * listener of its own, so the server's close cannot wait for them): resolves
 * once every one has closed, or after `ms`, draining them as `closeServer` does.
 */
export async function closeHandedConnections(
  server: Server,
  sockets: ReadonlySet<Socket>,
  ms: number,
  idleGraceMs = Math.min(ms, 1000),
): Promise<void> {
  const until = Date.now() + ms
  // upgraded connections (WebSockets) leave the HTTP server's hands: past `ms` they are the host's to end
  const closed = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (sockets.size > 0 && Date.now() < until) return
      clearInterval(check)
      resolve()
    }, 10)
  })
  await drainConnections(server, closed, ms, idleGraceMs)
}

async function drainConnections(
  server: Server,
  closed: Promise<void>,
  ms: number,
  idleGraceMs: number,
): Promise<void> {
  const lastCall = (_req: IncomingMessage, res: ServerResponse) => {
    res.shouldKeepAlive = false
  }
  server.on('request', lastCall)
  let sweep: NodeJS.Timeout | undefined
  const sweepStart = setTimeout(() => {
    server.closeIdleConnections()
    // a busy connection becomes idle after its response; Node gives no event for that
    sweep = setInterval(() => server.closeIdleConnections(), 25)
  }, idleGraceMs)
  let deadline: NodeJS.Timeout | undefined
  const late = new Promise<void>((resolve) => {
    deadline = setTimeout(() => {
      server.closeAllConnections()
      resolve()
    }, ms)
  })
  await Promise.race([closed, late.then(() => closed)])
  clearTimeout(sweepStart)
  clearInterval(sweep)
  clearTimeout(deadline)
  server.off('request', lastCall)
}
