import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * The host logger: pino JSON on stdout, one record per line. Error records
 * carry `code` and the bundle or module at the top level (not nested under
 * `err`), so `grep NYALA_ERR_` or a log shipper finds them directly.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  // Synchronous writes: pino's default stdout stream is asynchronous, and at exit its
  // buffered tail was flushed while an earlier write was still in flight, so the last
  // records came out of order (seen in the SIGTERM test). Nyala logs per module and per
  // reload, not per request (unless log.requests=true), so the cost is small.
  const stream = destination ?? pino.destination({ dest: 1, sync: true })
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream)
}
