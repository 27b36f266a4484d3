import { type IncomingMessage, request, type ServerResponse } from 'node:http'
import { nyalaError, reasonOf } from '../errors.js'
import { replyError } from '../http/json-reply.js'
import type { ModuleThread } from './module-thread.js'
import { generationHeader, remoteHeader } from './protocol.js'

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
  // the proxy's own, never a client's: a client must not choose the generation or its address
  generationHeader,
  remoteHeader,
])

/**
 * The end-to-end headers of a raw header list, in their order and case, as a flat
 * list: Node's client and `writeHead` take that as it is, without a header object
 * and a validation of each header.
 */
function endToEnd(raw: readonly string[], into: string[] = []): string[] {
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i] as string
    if (!hopByHop.has(key.toLowerCase())) into.push(key, raw[i + 1] as string)
  }
  return into
}

/**
 * The serving thread's side of a request to an isolated module: the request
 * goes to the module's thread over a local socket (an abstract Unix socket on
 * Linux) as HTTP/1.1, body streamed, and the answer comes back the same way,
 * status, headers and body chunks as they come (server-sent events stream).
 * Both directions are piped, so a slow client slows the module's writes and a
 * slow module the client's upload: nothing is buffered without bound. The
 * generation is named in a header, so an old generation draining after a
 * reload finishes its requests on its own code.
 */
export function proxyRouting(
  thread: ModuleThread,
  generation: number,
): (req: IncomingMessage, res: ServerResponse) => void {
  const number = String(generation)
  return (req, res) => {
    const headers = endToEnd(req.rawHeaders, [
      generationHeader,
      number,
      remoteHeader,
      req.socket.remoteAddress ?? '',
    ])
    const upstream = request({
      socketPath: thread.socketPath,
      agent: thread.agent,
      method: req.method,
      path: req.url,
      headers,
    })
    const fail = (err: unknown) => {
      if (res.headersSent) {
        res.destroy()
        return
      }
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      replyError(
        res,
        nyalaError('NYALA_ERR_MODULE_THREAD_PROXY', {
          module: thread.module,
          method: req.method ?? 'GET',
          path,
          reason: reasonOf(err),
        }),
      )
    }
    upstream.on('error', fail)
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.rawHeaders))
      // a stream (server-sent events) may send nothing for a while: its client gets the headers now
      if (answer.headers['content-length'] === undefined) res.flushHeaders()
      // piped by hand (fewer listeners than pipe): a client that does not read pauses the thread's answer
      answer.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) answer.pause()
      })
      res.on('drain', () => answer.resume())
      answer.on('end', () => res.end())
      answer.on('error', () => res.destroy())
      answer.on('aborted', () => res.destroy())
    })
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy()
    })
    // most requests have no body: no pipe to set up for them
    const headersIn = req.headers
    if (headersIn['content-length'] === undefined && headersIn['transfer-encoding'] === undefined)
      upstream.end()
    else req.pipe(upstream)
  }
}
