import type { ServerResponse } from 'node:http'
import type { NyalaError } from '../errors.js'

/** A Nyala error as a JSON body, in Fastify's error shape plus `code`. */
export function errorBody(err: NyalaError): string {
  return JSON.stringify({
    statusCode: err.statusCode,
    code: err.code,
    error: err.statusCode === 404 ? 'Not Found' : err.statusCode === 503 ? 'Service Unavailable' : 'Error',
    message: err.message,
  })
}

/** Answers a request with a Nyala error as JSON, in Fastify's error shape plus `code`. */
export function replyError(res: ServerResponse, err: NyalaError, headers: Record<string, string> = {}): void {
  const body = errorBody(err)
  res.writeHead(err.statusCode, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  })
  res.end(body)
}
