import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * The host logger: pino JSON on stdout, one record per line. Error records
 * carry `code` and the bundle or module at the top level (not nested under
 * `err`), so `grep NYALA_ERR_` or a log shipper finds them directly.
 */
export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, destination)
}
