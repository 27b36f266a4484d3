import type { Duplex } from 'node:stream'

/**
 * A server's WebSocket close frame (RFC 6455 5.5.1, unmasked): status 1001,
 * "going away", what a server says when it stops serving a connection.
 */
const goingAway = closeFrame(1001, 'going away')

/** The answer to an upgrade the module had not answered yet when its generation stopped. */
const notAnswered =
  'HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n'

/**
 * How long a connection ended by `endAll` may take to close on its own (the
 * client answering the close frame) before it is destroyed.
 */
const closeGraceMs = 1000

/**
 * The connections one generation took over by an HTTP upgrade (WebSockets).
 * After the upgrade they are no longer the HTTP server's: it neither closes
 * them when it closes nor counts them as requests, so the generation keeps
 * them to drain them, and ends the ones still open when it stops.
 */
export class UpgradedSockets {
  /** Each open connection, and whether it is a WebSocket (a close frame can end it). */
  readonly #open = new Map<Duplex, boolean>()

  get size(): number {
    return this.#open.size
  }

  /** Keeps `socket` until it closes, then calls `onClose` once. */
  add(socket: Duplex, websocket: boolean, onClose: () => void): void {
    this.#open.set(socket, websocket)
    socket.once('close', () => {
      this.#open.delete(socket)
      onClose()
    })
  }

  /**
   * Ends every connection still open: a WebSocket with a close frame 1001
   * "going away", an upgrade the module never answered with a 503, any other
   * protocol by ending the TCP stream. Written between the frames the
   * module's library writes (each frame is one synchronous write), so it
   * never splits one. The module's library sees the connection end as a
   * client that went away.
   */
  endAll(): void {
    for (const [socket, websocket] of this.#open) {
      if (socket.destroyed) continue
      const answered = (socket as Duplex & { bytesWritten?: number }).bytesWritten !== 0
      if (socket.writable) {
        if (!answered) socket.end(notAnswered)
        else if (websocket) socket.end(goingAway)
        else socket.end()
      }
      const timer = setTimeout(() => socket.destroy(), closeGraceMs)
      socket.once('close', () => clearTimeout(timer))
    }
  }
}

function closeFrame(code: number, reason: string): Buffer {
  const text = Buffer.from(reason)
  const frame = Buffer.alloc(4 + text.length)
  // FIN and opcode 0x8 (close); a payload under 126 bytes fits the 7-bit length
  frame[0] = 0x88
  frame[1] = 2 + text.length
  frame.writeUInt16BE(code, 2)
  text.copy(frame, 4)
  return frame
}
