import { createRequire } from 'node:module'
import path from 'node:path'
import { isatty } from 'node:tty'
import type { MessageFormatFunc, PrettyOptions } from 'pino-pretty'

type PinoPretty = typeof import('pino-pretty')

/** Fields the line shows elsewhere (time, level, the `[module gN]` prefix) or never (noise on a terminal). */
const shownElsewhere = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'module', 'generation', 'code'])
/** Longer lists (a reload's `affected` with 1000 modules) are cut: the JSON format keeps them whole. */
const maxListItems = 8

/**
 * A function turning one pino JSON record into one readable line (with a
 * stack below it when the record carries an error). pino-pretty is loaded
 * here, on first use, so a host logging JSON never loads it.
 */
export function createPrettifier(useColor = colorWanted()): (record: string) => string {
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as PinoPretty
  const options: PrettyOptions = {
    colorize: useColor,
    // local wall-clock time to the millisecond: a terminal reader knows the date, and the
    // JSON format keeps the full ISO time in UTC for anything that needs it
    translateTime: 'SYS:HH:MM:ss.l',
    // one process writes to a terminal: its pid and host name on every line are noise
    ignore: 'pid,hostname',
    // pino-pretty prints the remaining fields as an indented block of several lines per
    // record by default; a record that stays one line is easier to scan, so the fields go
    // on the message line as key=value (see formatMessage) and the block is hidden
    hideObject: true,
    messageFormat: formatMessage,
  }
  return prettyFactory(options)
}

/**
 * Colours when stdout is a terminal that has them, as most command-line tools do; NO_COLOR
 * turns them off and FORCE_COLOR on (https://no-color.org). Decided here rather than by
 * pino-pretty's default, which also colours a file whenever CI is set.
 */
function colorWanted(env = process.env): boolean {
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0'
  return env.NO_COLOR === undefined && env.TERM !== 'dumb' && isatty(1)
}

/**
 * `[module gN] CODE: message key=value ...`: the module and generation a line concerns
 * come first, so the lines of one module are found by eye; an error's code precedes its
 * message (as on stderr). A string field whose value the message already contains is
 * left out: an error's details are the placeholders of its message, so they would all
 * repeat. Numbers (ms, reload id, counts) always show.
 */
const formatMessage: MessageFormatFunc = (log, messageKey, _levelLabel, { colors }) => {
  const msg = typeof log[messageKey] === 'string' ? (log[messageKey] as string) : ''
  let line = ''
  if (typeof log.module === 'string') {
    const gen = typeof log.generation === 'number' ? ` g${log.generation}` : ''
    line += `${colors.bold(`[${clean(log.module)}${gen}]`)} `
  }
  if (typeof log.code === 'string') line += `${colors.bold(clean(log.code))}: `
  line += clean(relative(msg))
  const fields: string[] = []
  let stack = ''
  for (const [key, value] of Object.entries(log)) {
    if (shownElsewhere.has(key) || key === messageKey || value === undefined) continue
    if (typeof value === 'string' && msg.includes(value)) continue
    if (Array.isArray(value) && value.length === 0) continue
    const errorStack = stackOf(value)
    if (errorStack) {
      stack += `\n    ${clean(errorStack).replaceAll('\n', '\n    ')}`
      continue
    }
    fields.push(`${key}=${render(value)}`)
  }
  if (fields.length > 0) line += ` ${colors.gray(fields.join(' '))}`
  return line + stack
}

function render(value: unknown): string {
  if (typeof value === 'string') {
    const shown = relative(value)
    return /^[^\s"=]+$/.test(shown) ? clean(shown) : JSON.stringify(shown)
  }
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) {
    const items = value.slice(0, maxListItems).map((v) => render(v))
    if (value.length > maxListItems) items.push(`…(+${value.length - maxListItems})`)
    return items.join(',')
  }
  if (typeof value === 'object' && value !== null) return clean(JSON.stringify(value))
  return String(value)
}

/** The stack of a serialized error (pino's `err` serializer), if the value is one. */
function stackOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const stack = (value as { stack?: unknown }).stack
  return typeof stack === 'string' ? stack : undefined
}

/** Paths under the working directory are shown from it (`./modules/hello.zip`). */
function relative(text: string): string {
  const cwd = process.cwd()
  if (cwd === path.sep || !text.includes(cwd)) return text
  return text.replaceAll(`${cwd}${path.sep}`, `.${path.sep}`)
}

/**
 * Control characters a module might log (an escape sequence, a carriage return) are shown
 * escaped, so a log line cannot rewrite the terminal; newlines and tabs stay.
 */
function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, (c) => JSON.stringify(c).slice(1, -1))
}
