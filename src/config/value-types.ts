/**
 * Parsers for the value types of configuration keys. Each returns the parsed
 * value or a description of what was expected, so the caller can name the
 * file, key and value in one error.
 */
export type Parsed<T> = { ok: true; value: T } | { ok: false; expected: string }

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value })
const bad = (expected: string): Parsed<never> => ({ ok: false, expected })

export function parseBoolean(raw: string): Parsed<boolean> {
  const v = raw.toLowerCase()
  if (v === 'true' || v === 'yes' || v === 'on') return ok(true)
  if (v === 'false' || v === 'no' || v === 'off') return ok(false)
  return bad('true or false')
}

export function parseInteger(raw: string, min: number, max: number): Parsed<number> {
  if (!/^-?\d+$/.test(raw)) return bad(`an integer from ${min} to ${max}`)
  const n = Number(raw)
  return n >= min && n <= max ? ok(n) : bad(`an integer from ${min} to ${max}`)
}

export function parsePort(raw: string): Parsed<number> {
  const parsed = parseInteger(raw, 0, 65535)
  return parsed.ok ? parsed : bad('a TCP port from 0 to 65535 (0 picks a free port)')
}

/** Seconds as a number (fractions allowed), returned in milliseconds. */
export function parseSeconds(raw: string): Parsed<number> {
  if (!/^\d+(\.\d+)?$/.test(raw)) return bad('a number of seconds, such as 2 or 0.5')
  return ok(Math.round(Number(raw) * 1000))
}

export function parseMilliseconds(raw: string): Parsed<number> {
  const parsed = parseInteger(raw, 0, 2 ** 31 - 1)
  return parsed.ok ? parsed : bad('a whole number of milliseconds, such as 250')
}

/** `watchdog.stall.ms`: 0 (off), or from 100 ms: shorter would report every garbage collection. */
export function parseStallMs(raw: string): Parsed<number> {
  const parsed = parseInteger(raw, 0, 2 ** 31 - 1)
  if (parsed.ok && (parsed.value === 0 || parsed.value >= 100)) return parsed
  return bad('0 (off) or a whole number of milliseconds from 100, such as 2000')
}

/** `workers`: a count from 1, or `auto` (one per core the process may use, resolved at start). */
export function parseWorkers(raw: string): Parsed<number | 'auto'> {
  if (raw.toLowerCase() === 'auto') return ok('auto')
  const parsed = parseInteger(raw, 1, 256)
  return parsed.ok ? parsed : bad('auto or a whole number of worker processes from 1 to 256')
}

const byteUnits: Record<string, number> = {
  '': 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
}

/** Bytes, with an optional binary unit: `268435456`, `256m`, `256 MiB`. */
export function parseBytes(raw: string): Parsed<number> {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(raw)
  const unit = m ? byteUnits[m[2]!.toLowerCase()] : undefined
  if (!m || unit === undefined || Number(m[1]) === 0) {
    return bad('a positive number of bytes, optionally with K, M or G (binary units), such as 256M')
  }
  return ok(Number(m[1]) * unit)
}

export function parseEnum<T extends string>(raw: string, values: readonly T[]): Parsed<T> {
  return (values as readonly string[]).includes(raw) ? ok(raw as T) : bad(`one of ${values.join(', ')}`)
}

/**
 * A comma- or whitespace-separated list of distinct values from `values`, in
 * the order given; at least one.
 */
export function parseEnumList<T extends string>(raw: string, values: readonly T[]): Parsed<readonly T[]> {
  const items = raw.split(/[\s,]+/).filter(Boolean)
  const expected = `one or more of ${values.join(', ')}, comma-separated`
  if (items.length === 0) return bad(expected)
  const out: T[] = []
  for (const item of items) {
    if (!(values as readonly string[]).includes(item)) return bad(expected)
    if (!out.includes(item as T)) out.push(item as T)
  }
  return ok(Object.freeze(out))
}

/** A whitespace- or comma-separated list; empty means an empty list. */
export function parseList(raw: string): Parsed<string[]> {
  return ok(raw.split(/[\s,]+/).filter(Boolean))
}

export function parseNonEmpty(raw: string): Parsed<string> {
  return raw.length > 0 ? ok(raw) : bad('a non-empty value')
}

/** Any string, empty included (for optional settings such as a token). */
export function parseString(raw: string): Parsed<string> {
  return ok(raw)
}

export function parseHost(raw: string): Parsed<string> {
  return /^[\w.:-]+$/.test(raw) && raw.length > 0
    ? ok(raw)
    : bad('a host name or IP address, such as 127.0.0.1, 0.0.0.0 or ::1')
}

export function parseLogLevel(raw: string): Parsed<string> {
  return parseEnum(raw, ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
}
