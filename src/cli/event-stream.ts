import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import type { ReloadEvent } from '../reload/reload-events.js'
import type { AdminTarget } from './admin-client.js'

/** What `waitFor` resolves with: the matching event, or why none came. */
export type StreamOutcome = { event: ReloadEvent } | { timeout: true } | { ended: string }

/** A subscription to the admin API's `GET /events` (server-sent events). */
export interface EventStream {
  /** The first event from now on that `match` accepts, within `timeoutMs`. */
  waitFor(match: (event: ReloadEvent) => boolean, timeoutMs: number): Promise<StreamOutcome>
  close(): void
}

/** How long the admin API may take to answer the subscription itself. */
const connectTimeoutMs = 10_000

/**
 * Subscribes to a host's reload events. Resolves once the host has answered
 * (its listener is registered before the answer's head is sent, so no event
 * after this is missed). Throws NYALA_ERR_ADMIN_UNREACHABLE when nothing
 * answers, NYALA_ERR_ADMIN_UNAUTHORIZED / NYALA_ERR_ADMIN_RESPONSE for a
 * refusal.
 */
export async function openEventStream(target: AdminTarget): Promise<EventStream> {
  const url = `${target.url}/events`
  const abort = new AbortController()
  const timer = setTimeout(
    () => abort.abort(new Error(`no answer within ${connectTimeoutMs} ms`)),
    connectTimeoutMs,
  )
  let res: Response
  try {
    res = await fetch(url, {
      headers: target.token ? { authorization: `Bearer ${target.token}` } : {},
      signal: abort.signal,
    })
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    throw nyalaError('NYALA_ERR_ADMIN_UNREACHABLE', { url, reason: reasonOf(cause ?? err) }, err)
  } finally {
    clearTimeout(timer)
  }
  if (res.status === 401) {
    abort.abort()
    throw nyalaError('NYALA_ERR_ADMIN_UNAUTHORIZED', { method: 'GET', path: '/events' })
  }
  if (
    res.status !== 200 ||
    !res.body ||
    !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')
  ) {
    // the host's own refusal (a foreign origin, a URL with a path the API does not have) says
    // more than "not an event stream": its code, as `status` and `reload` show it
    const answer = await res
      .text()
      .then((text) => JSON.parse(text) as unknown)
      .catch(() => undefined)
    abort.abort()
    if (isNyalaError(answer)) throw answer
    throw nyalaError('NYALA_ERR_ADMIN_RESPONSE', {
      url,
      status: res.status,
      reason: `expected a text/event-stream, got ${res.headers.get('content-type') ?? 'no content type'}`,
    })
  }

  const events: ReloadEvent[] = []
  let ended: string | undefined
  let wake: () => void = () => {}
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  void (async () => {
    let buffer = ''
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value
        for (let end = buffer.search(/\r?\n\r?\n/); end >= 0; end = buffer.search(/\r?\n\r?\n/)) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '')
          const data = block
            .split(/\r?\n/)
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trimStart())
            .join('\n')
          // comments (`: ping`) carry no data
          if (data) events.push(JSON.parse(data) as ReloadEvent)
        }
        wake()
      }
      ended = 'the host closed the stream'
    } catch (err) {
      ended = abort.signal.aborted ? 'closed' : reasonOf(err)
    }
    wake()
  })()

  return {
    async waitFor(match, timeoutMs) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        while (events.length > 0) {
          const event = events.shift()!
          if (match(event)) return { event }
        }
        if (ended !== undefined) return { ended }
        const left = deadline - Date.now()
        if (left <= 0) return { timeout: true }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left)
          wake = () => {
            clearTimeout(t)
            resolve()
          }
        })
      }
    },
    close() {
      abort.abort()
    },
  }
}
