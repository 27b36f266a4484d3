import path from 'node:path'
import type { ResolveIndex } from './resolve.js'
import type { MapPlace, ShippedMap } from './source-maps.js'

/**
 * The source map a file of the bundle names by `url`, its last `//# sourceMappingURL=` comment
 * (what `tsc`, esbuild, Babel and most build tools write beside compiled code): a file of the
 * bundle, relative to the file, or an inline `data:` URL. Node applies these with `--enable-source-maps`;
 * a map that is absent, a URL of another kind (http:, file:) or a map file outside the bundle
 * gives none, and the file's own lines are shown.
 *
 * `filename` is the name the file is compiled under (`<bundle file>/<entry>`): the map's sources
 * are named under the same bundle prefix, which crash attribution reads.
 */
export function shippedMapOf(
  index: ResolveIndex,
  entry: string,
  url: string,
  filename: string,
): ShippedMap | undefined {
  const place = placeOf(filename, entry)
  if (place === undefined) return undefined
  if (url.startsWith('data:')) {
    const json = dataUrlText(url)
    return json === undefined ? undefined : { json, ...place }
  }
  const { root, dir } = place
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith('/')) return undefined
  let decoded: string
  try {
    decoded = decodeURIComponent(url)
  } catch {
    return undefined
  }
  const mapEntry = path.posix.normalize(dir === '' ? decoded : path.posix.join(dir, decoded))
  if (mapEntry.startsWith('../') || !index.files.has(mapEntry)) return undefined
  const mapDir = path.posix.dirname(mapEntry)
  return { json: index.readText(mapEntry), root, dir: mapDir === '.' ? '' : mapDir }
}

/** Where the sources of a map of `entry` (compiled as `filename`) are named from: its folder. */
export function placeOf(filename: string, entry: string): MapPlace | undefined {
  if (!filename.endsWith(`/${entry}`)) return undefined
  const dir = path.posix.dirname(entry)
  return { root: filename.slice(0, -(entry.length + 1)), dir: dir === '.' ? '' : dir }
}

// what precedes the URL, as Node reads it: `//# sourceMappingURL=` or `/*# sourceMappingURL=`
const commentStart = /\/[*/]#\s+$/

/**
 * The URL of the last `sourceMappingURL` comment (`//#` or `/*#`), wherever it is, as Node reads
 * it: looked for in every compiled file, so a search from the end and nothing more (the map is
 * read only for code not seen before, `shippedMapOf`).
 */
export function mappingUrlOf(source: string): string | undefined {
  const key = 'sourceMappingURL='
  for (let at = source.lastIndexOf(key); at > 0; at = source.lastIndexOf(key, at - 1)) {
    if (!commentStart.test(source.slice(Math.max(0, at - 32), at))) continue
    // read in place: an inline map's URL is megabytes
    const token = /\S+/y
    token.lastIndex = at + key.length
    const url = token.exec(source)?.[0]
    if (url !== undefined) return url
  }
  return undefined
}

/** The text of a `data:application/json[;charset=...][;base64],...` URL. */
function dataUrlText(url: string): string | undefined {
  const comma = url.indexOf(',')
  if (comma < 0) return undefined
  const meta = url.slice(5, comma).toLowerCase()
  if (!meta.startsWith('application/json')) return undefined
  const body = url.slice(comma + 1)
  try {
    return meta.endsWith(';base64') ? Buffer.from(body, 'base64').toString('utf8') : decodeURIComponent(body)
  } catch {
    return undefined
  }
}
