import { type IncomingMessage, STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { type NyalaError, nyalaError } from '../errors.js'
import type { DispatchTable } from './dispatch-table.js'
import { errorBody } from './json-reply.js'

/** What an upgrade is dispatched with: the dispatcher's current table and gate timeout. */
export interface UpgradeRouting {
  readonly table: DispatchTable
  readonly blockTimeoutMs: number
}

/**
 * Dispatches the listener's `upgrade` event (a WebSocket handshake) by URL
 * prefix as a request is, to the generation the table names now; the
 * connection stays on that generation until it closes (Generation.upgrade).
 * What no module takes is answered with a Nyala error on the raw connection.
 */
export function dispatchUpgrade(
  routing: UpgradeRouting,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  // Node takes its own error listener off before the upgrade event: a reset would be uncaught
  socket.on('error', destroyOnError)
  dispatchTo(routing, req, socket, head)
}

function dispatchTo(routing: UpgradeRouting, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const url = req.url ?? '/'
  const route = routing.table.lookup(url)
  const path = url.split('?')[0] ?? url
  if (!route) {
    rejectUpgrade(socket, nyalaError('NYALA_ERR_NO_MODULE', { path }))
    return
  }
  if (route.gate !== undefined) {
    route.gate.wait(routing.blockTimeoutMs).then((opened) => {
      if (socket.destroyed) return
      // look up again: the table swapped while the handshake waited
      if (opened) dispatchTo(routing, req, socket, head)
      else
        rejectUpgrade(
          socket,
          nyalaError('NYALA_ERR_REQUEST_BLOCKED_TIMEOUT', {
            module: route.module,
            timeout: routing.blockTimeoutMs,
          }),
          { 'retry-after': '1' },
        )
    })
    return
  }
  const generation = route.generation
  if (!generation?.app) {
    rejectUpgrade(
      socket,
      nyalaError('NYALA_ERR_MODULE_UNAVAILABLE', { module: route.module, state: route.state }),
      {
        'retry-after': '1',
      },
    )
    return
  }
  if (!generation.upgrade(req, socket, head)) {
    const protocol = req.headers.upgrade ?? ''
    rejectUpgrade(socket, nyalaError('NYALA_ERR_UPGRADE_UNHANDLED', { module: route.module, protocol, path }))
  }
}

/** Writes `err` as an HTTP response on the raw connection of a refused upgrade, then closes it. */
export function rejectUpgrade(socket: Duplex, err: NyalaError, headers: Record<string, string> = {}): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const body = errorBody(err)
  const lines = [
    `HTTP/1.1 ${err.statusCode} ${STATUS_CODES[err.statusCode] ?? 'Error'}`,
    'connection: close',
    'content-type: application/json; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`, () => socket.destroy())
}

function destroyOnError(this: Duplex): void {
  this.destroy()
}
