/**
 * `JSON.parse` as Node reads JSON files (`require`, JSON imports, package.json): past a
 * leading byte order mark, which is not JSON.
 */
export const parseJsonText = (text: string): unknown =>
  JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)

/**
 * A `tsconfig.json` as TypeScript reads it (JSON with `//` and block comments and trailing
 * commas); `undefined` when it does not parse even so.
 */
export function parseJsoncText(text: string): unknown {
  let plain = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (c === '"') {
      const end = stringEnd(text, i)
      plain += text.slice(i, end)
      i = end - 1
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && !lineEnd.test(text[i] ?? '')) i++
      plain += '\n'
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2)
      i = end < 0 ? text.length : end + 1
      plain += ' '
    } else if (c === ',' && closesNext(text, i + 1)) {
      // a trailing comma: left out
    } else if (c !== undefined && /\s/.test(c) && !jsonSpace.test(c)) {
      // white space TypeScript reads as such (U+00A0, U+2028, ...) and JSON does not
      plain += ' '
    } else plain += c
  }
  try {
    return parseJsonText(plain)
  } catch {
    return undefined
  }
}

const lineEnd = /[\n\r\u2028\u2029]/
const jsonSpace = /[ \t\n\r]/

/** Whether white space and comments, then `}` or `]`, follow from `at`. */
function closesNext(text: string, at: number): boolean {
  const next = /(?:\s|\/\/[^\n\r\u2028\u2029]*|\/\*[\s\S]*?\*\/)*[}\]]/y
  next.lastIndex = at
  return next.test(text)
}

/** Where the JSON string starting at `start` (its opening quote) ends: past its closing quote. */
function stringEnd(text: string, start: number): number {
  let i = start + 1
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1
  return i + 1
}
