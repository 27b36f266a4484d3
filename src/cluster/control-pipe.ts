import type { Duplex } from 'node:stream'

/**
 * Small messages on a pipe of their own, one JSON text per line. The IPC
 * channel that carries connections holds every message behind a handle until
 * the worker acknowledges that handle, so under a load of new connections a
 * COMMIT or a ping sent there waits behind them: the commit skew between
 * workers and a stall check would then measure the connection queue. On this
 * pipe they never wait behind a handle.
 */
export class ControlPipe<In, Out> {
  #buffered = ''

  constructor(
    private readonly stream: Duplex,
    onMessage: (message: In) => void,
  ) {
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => {
      this.#buffered += chunk
      let end = this.#buffered.indexOf('\n')
      while (end >= 0) {
        const line = this.#buffered.slice(0, end)
        this.#buffered = this.#buffered.slice(end + 1)
        if (line.length > 0) onMessage(JSON.parse(line) as In)
        end = this.#buffered.indexOf('\n')
      }
    })
    // the other end is gone: the IPC channel's disconnect and the process's exit say so
    stream.on('error', () => {})
  }

  send(message: Out): boolean {
    if (this.stream.destroyed || !this.stream.writable) return false
    this.stream.write(`${JSON.stringify(message)}\n`)
    return true
  }

  close(): void {
    this.stream.destroy()
  }
}
