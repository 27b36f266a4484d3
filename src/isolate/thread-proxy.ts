import type { IncomingMessage, ServerResponse } from 'node:http'
import { nyalaError } from '../errors.js'
import { replyError } from '../http/json-reply.js'
import { ownCopy, type RequestMessage, type ResponseMessage } from './protocol-requests.js'

/** Headers of one hop (RFC 9110 7.6.1), not passed on; `expect` is answered by the host's own server. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
])

/** The end-to-end headers of a raw header list, in their order and case, as a flat list. */
function endToEnd(raw: readonly string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i] as string
    if (!hopByHop.has(key.toLowerCase())) out.push(key, raw[i + 1] as string)
  }
  return out
}

interface Proxied {
  readonly req: IncomingMessage
  readonly res: ServerResponse
}

/**
 * The serving thread's side of the requests to one isolated module: each
 * request goes to the module's thread as messages (method, URL, headers, the
 * client's address, then its body chunk by chunk), and the answer comes back
 * as messages (status and headers, then body chunks as the module writes
 * them), written to the client's response at once: streamed responses and
 * server-sent events go through as they are written.
 *
 * Backpressure both ways: a client that does not read makes its response
 * buffer fill, and the thread is told to hold the module's writes until it
 * drains; a module that does not read its body makes the thread ask for the
 * client's upload to pause. What is in flight when either asks is bounded by
 * one message round trip.
 */
export class ProxiedRequests {
  readonly module: string
  readonly #post: (message: RequestMessage, transfer?: ArrayBuffer[]) => void
  readonly #live = new Map<number, Proxied>()
  #ids = 0
  /** Why the thread is gone, once it is: requests still routed here get a 502 at once. */
  #gone: string | undefined

  constructor(module: string, post: (message: RequestMessage, transfer?: ArrayBuffer[]) => void) {
    this.module = module
    this.#post = post
  }

  /** Requests in flight to the thread. */
  get size(): number {
    return this.#live.size
  }

  /** The dispatcher's `routing` for generation `generation` of the module. */
  routing(generation: number): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => this.#send(generation, req, res)
  }

  #send(generation: number, req: IncomingMessage, res: ServerResponse): void {
    const id = ++this.#ids
    this.#live.set(id, { req, res })
    if (this.#gone !== undefined) {
      this.failAll(this.#gone)
      return
    }
    const headers = req.headers
    // most requests have no body: they go whole in one message
    const bodyless = headers['content-length'] === undefined && headers['transfer-encoding'] === undefined
    this.#post({
      t: 'rq',
      id,
      g: generation,
      m: req.method ?? 'GET',
      u: req.url ?? '/',
      h: endToEnd(req.rawHeaders),
      a: req.socket.remoteAddress ?? '',
      e: bodyless,
    })
    res.on('close', () => {
      if (this.#live.delete(id)) this.#post({ t: 'rx', id })
    })
    res.on('drain', () => {
      if (this.#live.has(id)) this.#post({ t: 'rr', id })
    })
    if (bodyless) return
    req.on('data', (chunk: Buffer) => {
      const copy = ownCopy(chunk)
      this.#post({ t: 'rb', id, c: copy }, [copy.buffer as ArrayBuffer])
    })
    req.on('end', () => this.#post({ t: 're', id }))
  }

  /** A message of the thread about a request. */
  handle(m: ResponseMessage): void {
    const live = this.#live.get(m.id)
    if (!live) return
    const { req, res } = live
    if (m.t === 'sh') {
      res.statusMessage = m.r
      res.writeHead(m.s, endToEnd(m.h))
      // a stream (server-sent events) may send nothing for a while: its client gets the head now
      if (m.c === undefined && !m.f) res.flushHeaders()
      this.#write(m.id, res, m.c, m.f)
    } else if (m.t === 'sb') this.#write(m.id, res, m.c, m.f)
    else if (m.t === 'sx') {
      this.#live.delete(m.id)
      res.destroy()
    } else if (m.t === 'bp') req.pause()
    else if (m.t === 'br') req.resume()
  }

  #write(id: number, res: ServerResponse, chunk: Uint8Array | undefined, end: boolean): void {
    if (end) {
      this.#live.delete(id)
      res.end(chunk)
      return
    }
    if (chunk !== undefined && !res.write(chunk)) this.#post({ t: 'rp', id })
  }

  /** The thread is gone: what it had not answered gets a 502, what it had begun is cut. */
  failAll(reason: string): void {
    this.#gone = reason
    for (const [id, { req, res }] of this.#live) {
      this.#live.delete(id)
      if (res.headersSent) {
        res.destroy()
        continue
      }
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      replyError(
        res,
        nyalaError('NYALA_ERR_MODULE_THREAD_PROXY', {
          module: this.module,
          method: req.method ?? 'GET',
          path,
          reason,
        }),
      )
    }
  }
}
