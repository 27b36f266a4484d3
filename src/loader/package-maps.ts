/**
 * A package.json's `exports` and `imports` maps, read as Node reads them: the algorithms
 * PACKAGE_EXPORTS_RESOLVE, PACKAGE_IMPORTS_RESOLVE, PACKAGE_IMPORTS_EXPORTS_RESOLVE,
 * PATTERN_KEY_COMPARE and PACKAGE_TARGET_RESOLVE of Node's "ES modules" documentation
 * ("Resolution algorithm specification"), which `require` follows for these maps too.
 *
 * Written here rather than taken from resolve.exports (used until 2026-11-30), which differs from
 * Node where real packages notice: a condition whose nested conditions match nothing ended the
 * search there (`{ "node": { "import": ... }, "default": ... }` was "not exported" to `require`,
 * where Node falls through to `default`); `*` patterns were ranked by their whole length, not by
 * what precedes the `*`; invalid targets in a fallback array were not skipped. The resolution test
 * compares each case with Node itself (test/resolve-node.test.js).
 *
 * What comes back is the target as written, with the pattern's match put in: a path inside the
 * package (`./dist/x.js`) for the caller to find in the bundle, or, for an `imports` target only,
 * a package or built-in name to resolve from the package's folder.
 */

/** Node's code for each way a map lookup fails, which module code probing for packages reads. */
export type PackageMapCode =
  | 'ERR_PACKAGE_PATH_NOT_EXPORTED'
  | 'ERR_PACKAGE_IMPORT_NOT_DEFINED'
  | 'ERR_INVALID_PACKAGE_TARGET'
  | 'ERR_INVALID_PACKAGE_CONFIG'
  | 'ERR_INVALID_MODULE_SPECIFIER'

/** A map lookup that found nothing, or a map that is invalid: the text of the failure, Node's code. */
export class PackageMapFailure extends Error {
  constructor(
    message: string,
    readonly code: PackageMapCode,
  ) {
    super(message)
  }

  /** Not exported / not defined (as opposed to an invalid map, target or specifier). */
  get missing(): boolean {
    return this.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED' || this.code === 'ERR_PACKAGE_IMPORT_NOT_DEFINED'
  }
}

/** `./path` inside the package, or (imports only) a bare specifier to resolve from the package. */
export type MapTarget =
  | { readonly kind: 'path'; readonly path: string }
  | { readonly kind: 'bare'; readonly specifier: string }

/** Not a match: the map names nothing for these conditions (Node's `undefined`). */
const noMatch = undefined
/** Excluded: a `null` target, or an empty array (Node's `null`). */
const excluded = null
type Resolution = MapTarget | typeof noMatch | typeof excluded

/** An invalid target, or a pattern match with a forbidden segment (Node's codes). */
class InvalidTarget extends Error {
  constructor(
    message: string,
    readonly code:
      | 'ERR_INVALID_PACKAGE_TARGET'
      | 'ERR_INVALID_PACKAGE_CONFIG'
      | 'ERR_INVALID_MODULE_SPECIFIER' = 'ERR_INVALID_PACKAGE_TARGET',
  ) {
    super(message)
  }
}

/** PACKAGE_EXPORTS_RESOLVE: `subpath` is `.` or `./x`. */
export function resolveExports(exports: unknown, subpath: string, conditions: readonly string[]): MapTarget {
  const dotKeys = mapKeys(exports)
  // `"exports": false` (or a number): nothing is exported, as Node reads it
  const usable = typeof exports === 'string' || (typeof exports === 'object' && exports !== null)
  let resolved: Resolution
  try {
    if (!usable) resolved = noMatch
    else if (subpath === '.') {
      const main = dotKeys ? (exports as Record<string, unknown>)['.'] : exports
      resolved = main === undefined ? noMatch : targetResolve(main, null, false, conditions)
    } else {
      resolved = dotKeys
        ? mapResolve(subpath, exports as Record<string, unknown>, false, conditions)
        : noMatch
    }
  } catch (err) {
    if (err instanceof InvalidTarget) throw new PackageMapFailure(err.message, err.code)
    throw err
  }
  if (!resolved) throw new PackageMapFailure(`"${subpath}" is not exported`, 'ERR_PACKAGE_PATH_NOT_EXPORTED')
  return resolved
}

/** PACKAGE_IMPORTS_RESOLVE: `imports` is the package scope's field (anything but an object defines nothing). */
export function resolveImports(
  imports: unknown,
  specifier: string,
  conditions: readonly string[],
): MapTarget {
  if (specifier === '#' || specifier.startsWith('#/') || specifier.endsWith('/')) {
    throw new PackageMapFailure(`"${specifier}" is not a valid #specifier`, 'ERR_INVALID_MODULE_SPECIFIER')
  }
  const map = imports !== null && typeof imports === 'object' && !Array.isArray(imports) ? imports : {}
  let resolved: Resolution
  try {
    resolved = mapResolve(specifier, map as Record<string, unknown>, true, conditions)
  } catch (err) {
    if (err instanceof InvalidTarget) throw new PackageMapFailure(err.message, err.code)
    throw err
  }
  if (!resolved) {
    throw new PackageMapFailure(
      `"${specifier}" is not defined in package.json "imports"`,
      'ERR_PACKAGE_IMPORT_NOT_DEFINED',
    )
  }
  return resolved
}

/**
 * Whether `exports` is a map of subpaths (every key starts with `.`) rather than conditions (no
 * key does); a mix is invalid, as in Node.
 */
function mapKeys(exports: unknown): boolean {
  if (exports === null || typeof exports !== 'object' || Array.isArray(exports)) return false
  const keys = Object.keys(exports)
  const dots = keys.filter((k) => k.startsWith('.')).length
  if (dots !== 0 && dots !== keys.length) {
    throw new PackageMapFailure(
      'package.json "exports" mixes subpaths (keys starting with ".") and conditions',
      'ERR_INVALID_PACKAGE_CONFIG',
    )
  }
  return dots > 0
}

/** PACKAGE_IMPORTS_EXPORTS_RESOLVE. */
function mapResolve(
  key: string,
  map: Record<string, unknown>,
  isImports: boolean,
  conditions: readonly string[],
): Resolution {
  // a subpath ending in "/" is never an exact export (folder mappings are gone from Node)
  if (Object.hasOwn(map, key) && !key.includes('*') && (isImports || !key.endsWith('/')))
    return targetResolve(map[key], null, isImports, conditions)
  const patterns = Object.keys(map)
    .filter((k) => k.indexOf('*') !== -1 && k.indexOf('*') === k.lastIndexOf('*'))
    .sort(patternKeyCompare)
  for (const pattern of patterns) {
    const star = pattern.indexOf('*')
    const base = pattern.slice(0, star)
    if (!key.startsWith(base) || key === base) continue
    const trailer = pattern.slice(star + 1)
    if (trailer === '' || (key.endsWith(trailer) && key.length >= pattern.length)) {
      const match = key.slice(base.length, key.length - trailer.length)
      return targetResolve(map[pattern], match, isImports, conditions)
    }
  }
  return excluded
}

/** PATTERN_KEY_COMPARE: the longest part before the `*` first, then the longest key. */
function patternKeyCompare(a: string, b: string): number {
  const baseA = a.indexOf('*') + 1
  const baseB = b.indexOf('*') + 1
  if (baseA !== baseB) return baseB - baseA
  if (baseA === 0) return 1
  if (baseB === 0) return -1
  return b.length - a.length
}

/**
 * A segment no target or pattern match may have: `.`, `..` or `node_modules`, also with any of
 * their characters percent-encoded (Node's check, case-insensitive). An empty segment (`a//b`) is
 * only deprecated in Node, which resolves it; so is it here.
 */
const badSegment = (() => {
  // the character, or its escape in either letter case (`n`: %6e, or %4e for `N`)
  const encoded = (c: string) => {
    const hex = (ch: string) => `%${ch.charCodeAt(0).toString(16)}`
    const upper = c.toUpperCase() === c ? '' : `|${hex(c.toUpperCase())}`
    return `(?:${c.replace(/[.]/, '\\.')}|${hex(c)}${upper})`
  }
  const dot = encoded('.')
  const nodeModules = [...'node_modules'].map(encoded).join('')
  return new RegExp(`(?:^|[\\\\/])(?:${dot}${dot}?|${nodeModules})(?:[\\\\/]|$)`, 'i')
})()

/** PACKAGE_TARGET_RESOLVE. */
function targetResolve(
  target: unknown,
  match: string | null,
  isImports: boolean,
  conditions: readonly string[],
): Resolution {
  if (typeof target === 'string') return stringTarget(target, match, isImports)
  if (Array.isArray(target)) {
    if (target.length === 0) return excluded
    // every item no match: no match (the next condition is tried); else the last null or error
    let last: Resolution | InvalidTarget = noMatch
    for (const item of target) {
      try {
        const resolved = targetResolve(item, match, isImports, conditions)
        if (resolved === noMatch) continue
        if (resolved !== excluded) return resolved
        last = resolved
      } catch (err) {
        // only an invalid target falls back to the next item, as in Node; the rest is thrown
        if (!(err instanceof InvalidTarget) || err.code !== 'ERR_INVALID_PACKAGE_TARGET') throw err
        last = err
      }
    }
    if (last instanceof InvalidTarget) throw last
    return last
  }
  if (target === null) return excluded
  if (typeof target === 'object') {
    const keys = Object.keys(target)
    if (keys.some((k) => /^(0|[1-9]\d*)$/.test(k))) {
      throw new InvalidTarget('a conditions object has a numeric key', 'ERR_INVALID_PACKAGE_CONFIG')
    }
    for (const condition of keys) {
      if (condition !== 'default' && !conditions.includes(condition)) continue
      const resolved = targetResolve(
        (target as Record<string, unknown>)[condition],
        match,
        isImports,
        conditions,
      )
      // nothing in it for these conditions: the next condition is tried (Node's fall-through)
      if (resolved === noMatch) continue
      return resolved
    }
    return noMatch
  }
  throw new InvalidTarget(`the target ${JSON.stringify(target)} is not a string, array, object or null`)
}

function stringTarget(target: string, match: string | null, isImports: boolean): MapTarget {
  // a function, so that `$&`, `$$` in what the * stands for are taken as they are
  const fill = (text: string) => (match === null ? text : text.replaceAll('*', () => match))
  if (!target.startsWith('./')) {
    if (!isImports || target.startsWith('../') || target.startsWith('/') || isUrl(target)) {
      throw new InvalidTarget(`the target "${target}" must start with "./"`)
    }
    return { kind: 'bare', specifier: fill(target) }
  }
  if (badSegment.test(target.slice(2))) {
    throw new InvalidTarget(`the target "${target}" has a "", ".", ".." or "node_modules" segment`)
  }
  if (match !== null && badSegment.test(match)) {
    throw new InvalidTarget(
      `"${match}" (what the * stands for) has a "", ".", ".." or "node_modules" segment`,
      'ERR_INVALID_MODULE_SPECIFIER',
    )
  }
  return { kind: 'path', path: asPath(fill(target)) }
}

/**
 * A target as the file it names, as Node reads it through a `file:` URL: `\` is `/`,
 * percent-escapes are decoded (`./a%20b.js` is `a b.js`), a `?` or `#` ends the name; an escaped
 * `/` or `\` is refused.
 */
function asPath(target: string): string {
  // what follows a `?` or `#` is the URL's query or fragment, not the file's name
  const cut = target.search(/[?#]/)
  const slashed = (cut < 0 ? target : target.slice(0, cut)).replaceAll('\\', '/')
  if (/%2f|%5c/i.test(slashed)) {
    throw new InvalidTarget(
      `"${target}" must not include encoded "/" or "\\" characters`,
      'ERR_INVALID_MODULE_SPECIFIER',
    )
  }
  try {
    return decodeURIComponent(slashed)
  } catch {
    // a "%" that starts no escape: the name as written (Node fails with "URI malformed")
    return slashed
  }
}

function isUrl(text: string): boolean {
  try {
    new URL(text)
    return true
  } catch {
    return false
  }
}
