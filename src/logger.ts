import { isatty } from 'node:tty'
import { type DestinationStream, type Logger, pino } from 'pino'
import type { LogFormatSetting } from './config/host-options.js'
import { createPrettifier } from './pretty-log.js'

export type { Logger }

/** `log.format=auto`: readable lines for a person at a terminal, JSON for a pipe, a file or a log shipper. */
export function resolveLogFormat(setting: LogFormatSetting, stdoutIsTty = isatty(1)): 'json' | 'pretty' {
  if (setting === 'auto') return stdoutIsTty ? 'pretty' : 'json'
  return setting
}

/**
 * The host logger: pino JSON on stdout, one record per line, or (format
 * `pretty`) the same records as readable lines. Error records carry `code`
 * and the bundle or module at the top level (not nested under `err`), so
 * `grep NYALA_ERR_` or a log shipper finds them directly.
 */
export function createLogger(
  level: string,
  format: LogFormatSetting = 'json',
  destination?: NodeJS.WritableStream,
): Logger {
  // Synchronous writes: pino's default stdout stream is asynchronous, and at exit its
  // buffered tail was flushed while an earlier write was still in flight, so the last
  // records came out of order (seen in the SIGTERM test). Nyala logs per module and per
  // reload, not per request (unless log.requests=true), so the cost is small.
  const out = destination ?? pino.destination({ dest: 1, sync: true })
  // Pretty lines are made in the write call itself, not by pino-pretty's stream or a
  // transport worker: both hand records on asynchronously, which would bring back the lost
  // and reordered tail at exit. Either way this stays the one pino instance of the process
  // (a second one on stdout measured ~15 us more CPU per request, see cli/start.ts).
  const stream: DestinationStream = resolveLogFormat(format) === 'pretty' ? prettyStream(out) : out
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, stream)
}

function prettyStream(out: DestinationStream): DestinationStream {
  const prettify = createPrettifier()
  return {
    write(record: string) {
      out.write(prettify(record))
    },
  }
}
