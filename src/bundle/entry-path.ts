/**
 * Normalizes a path inside a bundle to `a/b/c.js`, or returns `undefined` when
 * it would leave the bundle root (`..`, an absolute path, a drive letter).
 * Zip tools write `/` but some Windows tools write `\`.
 */
export function safeEntryPath(raw: string): string | undefined {
  const name = raw.replace(/\\/g, '/')
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return undefined
  const parts: string[] = []
  for (const part of name.split('/')) {
    if (part === '..') return undefined
    if (part === '' || part === '.') continue
    parts.push(part)
  }
  return parts.join('/')
}
