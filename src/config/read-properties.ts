import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { propertiesReader } from 'properties-reader'
import { nyalaError, reasonOf } from '../errors.js'

/**
 * The raw string values of a `.properties` text, in file order.
 *
 * properties-reader coerces values (`true`, numbers) and would hide a bad
 * value, so only raw strings come out of here and every part validates its
 * own keys. A `#` after whitespace starts a comment, as in the design's
 * examples (`main=index.js   # default index.js`); Java would keep it.
 */
export function parseProperties(text: string): Map<string, string> {
  const reader = propertiesReader()
  reader.read(linesItCanRead(text))
  const out = new Map<string, string>()
  for (const [key, value] of reader.entries()) out.set(key, withoutComment(String(value ?? '')))
  return out
}

/**
 * properties-reader matches each trimmed line with `/^([^#=]+)(={0,1})(.*)$/`, whose
 * `.` stops at `\r`, U+2028 and U+2029: a line with one of them after its first `=`
 * or `#` never matches, and only after trying every shorter key (quadratic: a 300 kB
 * manifest line took minutes, found by the fuzzer). Such lines are dropped before it
 * sees them, as it would have dropped them, and `\r\n` or a lone `\r` ends a line,
 * as in Java.
 */
function linesItCanRead(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .filter((line) => {
      const trimmed = line.trim()
      const at = trimmed.search(/[#=]/)
      return at < 0 || !/[\u2028\u2029]/.test(trimmed.slice(at))
    })
    .join('\n')
}

/**
 * The value without a trailing ` # comment` (the first whitespace-then-`#` on the
 * value's last line), trimmed. Not `/\s+#.*$/`: that regular expression backtracks
 * over every run of whitespace, and a manifest value of 16,000 spaces took 0.8 s
 * (found by the fuzzer, fuzz/bundle-cases.js).
 */
function withoutComment(value: string): string {
  const lastLine = Math.max(
    value.lastIndexOf('\n'),
    value.lastIndexOf('\r'),
    value.lastIndexOf('\u2028'),
    value.lastIndexOf('\u2029'),
  )
  const comment = /\s#/g
  // the line break itself is whitespace before a `#`
  comment.lastIndex = Math.max(0, lastLine)
  const found = comment.exec(value)
  return (found ? value.slice(0, found.index) : value).trim()
}

/** Reads and parses a properties file; a missing file is `undefined`. */
export function readPropertiesFile(file: string): Map<string, string> | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return missingOrThrow(file, err)
  }
  return parseProperties(text)
}

/**
 * `readPropertiesFile` off the calling thread (for a reload's path: a slow disk never holds
 * requests up).
 */
export async function readPropertiesFileAsync(file: string): Promise<Map<string, string> | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return missingOrThrow(file, err)
  }
  return parseProperties(text)
}

/** A missing file is `undefined`; any other failure to read it is NYALA_ERR_CONFIG_READ. */
function missingOrThrow(file: string, err: unknown): undefined {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
  throw nyalaError('NYALA_ERR_CONFIG_READ', { file, reason: reasonOf(err) }, err)
}
