import { IncomingMessage } from 'node:http'
import { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { ownCopy, type RequestMessage, type ResponseMessage } from './protocol-requests.js'
import { ThreadResponse } from './thread-response.js'

interface Live {
  readonly req: IncomingMessage
  readonly res: ThreadResponse
  /** The module has not read the body fast enough: the serving thread was asked to pause it. */
  paused: boolean
}

/**
 * The module thread's side of requests: each one arrives as a message, is
 * made into an `IncomingMessage` (body pushed as its chunks come) and a
 * ThreadResponse, and routed into the Fastify instance of the generation the
 * serving thread named. What the module writes goes back as messages.
 */
export class ThreadRequests {
  readonly #live = new Map<number, Live>()
  readonly #post: (message: ResponseMessage, transfer?: ArrayBuffer[]) => void
  readonly #appOf: (generation: number) => FastifyInstance | undefined

  constructor(
    post: (message: ResponseMessage, transfer?: ArrayBuffer[]) => void,
    appOf: (generation: number) => FastifyInstance | undefined,
  ) {
    this.#post = post
    this.#appOf = appOf
  }

  handle(m: RequestMessage): void {
    if (m.t === 'rq') {
      this.#start(m)
      return
    }
    const live = this.#live.get(m.id)
    if (!live) return
    if (m.t === 'rb') {
      if (!live.req.push(m.c) && !live.paused) {
        live.paused = true
        this.#post({ t: 'bp', id: m.id })
      }
    } else if (m.t === 're') {
      live.req.complete = true
      live.req.push(null)
    } else if (m.t === 'rx') {
      this.#live.delete(m.id)
      live.req.destroy()
      live.res.destroy()
    } else if (m.t === 'rp') live.res.holdWrites()
    else if (m.t === 'rr') live.res.releaseWrites()
  }

  #start(m: Extract<RequestMessage, { t: 'rq' }>): void {
    const socket = new Duplex({ read() {}, write: (_c, _e, cb) => cb() })
    Object.assign(socket, { remoteAddress: m.a, encrypted: false })
    const req = new IncomingMessage(socket as never)
    req.method = m.m
    req.url = m.u
    req.httpVersion = '1.1'
    req.httpVersionMajor = 1
    req.httpVersionMinor = 1
    req.rawHeaders = m.h as string[]
    // Node's own rules for repeated headers (joined, set-cookie kept as a list)
    const headers = {}
    const add = (req as unknown as { _addHeaderLine(k: string, v: string, d: object): void })._addHeaderLine
    for (let i = 0; i + 1 < m.h.length; i += 2) add.call(req, m.h[i] as string, m.h[i + 1] as string, headers)
    req.headers = headers
    const id = m.id
    const live: Live = { req, res: undefined as unknown as ThreadResponse, paused: false }
    // the module reads again: the serving thread may send more of the body
    req._read = () => {
      if (!live.paused) return
      live.paused = false
      this.#post({ t: 'br', id })
    }
    const res = new ThreadResponse(req, {
      head: (s, r, h, c, f) => {
        const chunk = c && c.byteLength > 0 ? ownCopy(c) : undefined
        this.#post({ t: 'sh', id, s, r, h, c: chunk, f }, chunk ? [chunk.buffer as ArrayBuffer] : undefined)
        if (f) this.#live.delete(id)
      },
      body: (c, f) => {
        const chunk = c && c.byteLength > 0 ? ownCopy(c) : undefined
        if (!chunk && !f) return
        this.#post({ t: 'sb', id, c: chunk, f }, chunk ? [chunk.buffer as ArrayBuffer] : undefined)
        if (f) this.#live.delete(id)
      },
      abort: () => {
        if (this.#live.delete(id)) this.#post({ t: 'sx', id })
      },
    })
    ;(live as { res: ThreadResponse }).res = res
    this.#live.set(id, live)
    if (m.e) {
      req.complete = true
      req.push(null)
    }
    const app = this.#appOf(m.g)
    if (!app) {
      res.writeHead(503, { 'content-type': 'application/json; charset=utf-8' })
      res.end(JSON.stringify({ code: 'NYALA_ERR_MODULE_UNAVAILABLE', generation: m.g }))
      return
    }
    app.routing(req, res as never)
  }
}
