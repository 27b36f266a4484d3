import type { IncomingMessage, OutgoingHttpHeader, OutgoingHttpHeaders } from 'node:http'
import { STATUS_CODES } from 'node:http'
import { Writable } from 'node:stream'

/** What a response in the thread sends to the serving thread. */
export interface ResponseSink {
  /** The status line and headers (a flat list), with the first body bytes and the end when known. */
  head(status: number, reason: string, headers: string[], chunk: Uint8Array | undefined, end: boolean): void
  body(chunk: Uint8Array | undefined, end: boolean): void
  /** The response was destroyed before it ended: the client's connection is closed. */
  abort(): void
}

/**
 * The `res` a module's Fastify instance answers into, in the module's
 * thread: the part of `http.ServerResponse` Fastify and module code use
 * (headers, `writeHead`, `write`, `end`, `flushHeaders`, `statusCode`,
 * `headersSent`, the stream events), as a Writable whose bytes go to the
 * serving thread as messages (thread-requests.ts), which writes them to the
 * client's real response. No HTTP framing is made here: the serving thread's
 * response does it. Backpressure: while the client's response does not drain,
 * `holdWrites()` holds every write's callback, so `write` returns false to the
 * module once the stream's buffer is full.
 */
export class ThreadResponse extends Writable {
  statusCode = 200
  statusMessage = ''
  sendDate = true
  readonly req: IncomingMessage
  readonly #sink: ResponseSink
  /** Lower-case name -> [name as given, value]. */
  readonly #headers = new Map<string, [string, OutgoingHttpHeader]>()
  #headSent = false
  /** `writeHead` was called: the head is fixed, sent with the first bytes or the end. */
  #headFixed = false
  #noBody: boolean
  #paused = false
  #finSent = false
  #held: (() => void)[] = []

  constructor(req: IncomingMessage, sink: ResponseSink) {
    super()
    this.req = req
    this.#sink = sink
    this.#noBody = req.method === 'HEAD'
  }

  get socket(): IncomingMessage['socket'] {
    return this.req.socket
  }

  get connection(): IncomingMessage['socket'] {
    return this.req.socket
  }

  get headersSent(): boolean {
    return this.#headFixed
  }

  get finished(): boolean {
    return this.writableEnded
  }

  setHeader(name: string, value: OutgoingHttpHeader): this {
    if (this.#headFixed) throw headersSentError('set')
    this.#headers.set(name.toLowerCase(), [name, value])
    return this
  }

  appendHeader(name: string, value: string | readonly string[]): this {
    const key = name.toLowerCase()
    const old = this.#headers.get(key)?.[1]
    const more = typeof value === 'string' ? [value] : [...value]
    const list = old === undefined ? more : [...(Array.isArray(old) ? old : [String(old)]), ...more]
    return this.setHeader(name, list)
  }

  getHeader(name: string): OutgoingHttpHeader | undefined {
    return this.#headers.get(name.toLowerCase())?.[1]
  }

  getHeaders(): OutgoingHttpHeaders {
    const out: OutgoingHttpHeaders = Object.create(null)
    for (const [key, [, value]] of this.#headers) out[key] = value
    return out
  }

  getHeaderNames(): string[] {
    return [...this.#headers.keys()]
  }

  hasHeader(name: string): boolean {
    return this.#headers.has(name.toLowerCase())
  }

  removeHeader(name: string): void {
    if (this.#headFixed) throw headersSentError('remove')
    this.#headers.delete(name.toLowerCase())
  }

  writeHead(
    status: number,
    reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    if (this.#headFixed) throw headersSentError('write')
    const given = typeof reason === 'string' ? headers : reason
    if (typeof reason === 'string') this.statusMessage = reason
    this.statusCode = status
    if (Array.isArray(given)) {
      // a flat list [name, value, name, value, ...] (or pairs)
      const flat = given.flat() as string[]
      for (let i = 0; i + 1 < flat.length; i += 2) this.#add(String(flat[i]), flat[i + 1] as string)
    } else if (given) {
      for (const name of Object.keys(given)) {
        const value = given[name]
        if (value !== undefined) this.#headers.set(name.toLowerCase(), [name, value])
      }
    }
    this.#headFixed = true
    // no body for these, whatever is written (as Node's own response)
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) this.#noBody = true
    return this
  }

  #add(name: string, value: string): void {
    const key = name.toLowerCase()
    const old = this.#headers.get(key)
    if (!old) this.#headers.set(key, [name, value])
    else old[1] = [...(Array.isArray(old[1]) ? old[1] : [String(old[1])]), value]
  }

  /** Sends the head now (server-sent events send it before their first event). */
  flushHeaders(): void {
    this.#sendHead(undefined, false)
  }

  /**
   * The usual whole answer (`res.end(body)` before anything was written) goes
   * as one message: head, body and end together.
   */
  override end(chunk?: unknown, encoding?: unknown, callback?: unknown): this {
    if (
      !this.#headSent &&
      !this.writableEnded &&
      this.writableLength === 0 &&
      (typeof chunk === 'string' || chunk instanceof Uint8Array)
    ) {
      const bytes =
        typeof chunk === 'string'
          ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
          : chunk
      this.#sendHead(bytes, true)
      const done = typeof encoding === 'function' ? encoding : callback
      return typeof done === 'function' ? super.end(done as () => void) : super.end()
    }
    return super.end(chunk as never, encoding as never, callback as never)
  }

  #sendHead(chunk: Uint8Array | undefined, end: boolean): void {
    // the end went with the head already (end above)
    if (this.#finSent) return
    if (end) this.#finSent = true
    if (this.#headSent) {
      if (chunk !== undefined || end) this.#sink.body(this.#noBody ? undefined : chunk, end)
      return
    }
    this.#headFixed = true
    this.#headSent = true
    const flat: string[] = []
    for (const [name, value] of this.#headers.values()) {
      if (Array.isArray(value)) for (const v of value) flat.push(name, String(v))
      else flat.push(name, String(value))
    }
    const reason = this.statusMessage || STATUS_CODES[this.statusCode] || ''
    this.#sink.head(this.statusCode, reason, flat, this.#noBody ? undefined : chunk, end)
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#sendHead(chunk, false)
    if (this.#paused) this.#held.push(() => callback())
    else callback()
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#sendHead(undefined, true)
    callback()
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.writableFinished) this.#sink.abort()
    this.#held = []
    callback(error)
  }

  /** The client's response is not draining: writes wait. */
  holdWrites(): void {
    this.#paused = true
  }

  releaseWrites(): void {
    this.#paused = false
    for (const release of this.#held.splice(0)) release()
  }

  setTimeout(): this {
    return this
  }

  writeContinue(): void {}
  writeProcessing(): void {}
  writeEarlyHints(_hints: unknown, callback?: () => void): void {
    callback?.()
  }
  addTrailers(): void {}
  assignSocket(): void {}
  detachSocket(): void {}
}

function headersSentError(what: string): Error {
  return Object.assign(new Error(`Cannot ${what} headers after they are sent to the client`), {
    code: 'ERR_HTTP_HEADERS_SENT',
  })
}
