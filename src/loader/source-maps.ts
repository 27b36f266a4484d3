import { createHash } from 'node:crypto'
import { SourceMap } from 'node:module'
import path from 'node:path'

/**
 * Stack traces of transformed code (ES modules, TypeScript) name the original
 * `file:line:column`; so do those of compiled code shipped with its source map
 * (`//# sourceMappingURL=`, src/loader/shipped-map.ts), which name the map's
 * source file (`src/index.ts` for `tsc`'s `dist/index.js`), as Node's
 * `--enable-source-maps` does. A transformed file with a map of its own is
 * mapped through both.
 *
 * Node does not apply source maps to code compiled with `vm.compileFunction`
 * (not even with `process.setSourceMapsEnabled(true)`: checked on Node 20), so
 * the host maps frames itself, in an `Error.prepareStackTrace` installed when
 * the first file with a map is compiled. It runs only when a stack is read;
 * a frame of any other file costs one lookup. A frame is matched to its map by
 * V8's script hash (the SHA-256 of the compiled source) and its file name, so
 * two generations of the same file, with different code, each map with their
 * own map, and the same code under two names maps under each. Maps are
 * decoded on first use (Node's own `module.SourceMap`) and kept in an LRU of
 * `mapLimit` entries and `mapBytesLimit` bytes of map text.
 */

/** Source maps kept for stack traces; an older one is dropped (its frames show transformed lines). @default 4096 */
export const mapLimit = 4096
/**
 * Bytes the kept maps may take: their text, and about 20 times the text once a map is decoded
 * (measured: 10 MB of map text took about 225 MB of heap decoded). A map alone over it is not
 * kept. @default 256 MiB
 */
export const mapBytesLimit = 256 * 1024 * 1024
/** Heap a decoded map takes, per character of its text (an estimate, from the measure above). */
const decodedPerChar = 20

/** Where a map's sources are: they are named `<root>/<dir>/<source>`. */
export interface MapPlace {
  /** The name prefix of the bundle's files as compiled: `<bundle file>`. */
  readonly root: string
  /** The bundle folder the map's sources are relative to (the map file's own; '' is the root). */
  readonly dir: string
}

/** A map that came with the code (not made by the transform): frames name its sources. */
export interface ShippedMap extends MapPlace {
  readonly json: string
}

/**
 * The transform's map (transformed code to the file as written), and the name it gives that
 * file (`own`); a source of any other name is one esbuild took from an inline map of the input,
 * named from `place`.
 */
export interface TransformMap {
  readonly json: string
  readonly own: string
  readonly place: MapPlace | undefined
  /** Characters put before the first line of the transformed code (`'use strict';`), which the map does not know of. */
  readonly shift: number
}

interface MapEntry {
  readonly filename: string
  readonly transform: TransformMap | undefined
  /** `null` once it failed to decode: not tried again. */
  decoded?: SourceMap | null
  readonly shipped: ShippedMap | undefined
  /** `null` once it failed to decode: not tried again. */
  shippedDecoded?: SourceMap | null
  /** What it is counted as against `mapBytesLimit`: its text, and its decoded maps. */
  size: number
}

const maps = new Map<string, MapEntry>()
/** File names with a registered map, with how many maps each has: most frames are not ours. */
const mappedFiles = new Map<string, number>()
let heldBytes = 0
let installed = false
let previous: ((err: Error, frames: NodeJS.CallSite[]) => unknown) | undefined

/**
 * Registers the maps of `code`, compiled as `filename`: the transform's and the one
 * shipped with the file (`shipped`, read only for code not registered yet); either may be absent.
 */
export function registerSourceMap(
  filename: string,
  code: string,
  transform: TransformMap | undefined,
  shippedMap?: (() => ShippedMap | undefined) | undefined,
): void {
  if (transform === undefined && shippedMap === undefined) return
  // by code and name: the same code compiled under two names (a package two modules bundle, a
  // transform whose output does not depend on what its input's map said) maps under each
  const key = `${createHash('sha256').update(code).digest('hex')}\0${filename}`
  const old = maps.get(key)
  if (old && old.transform?.json === transform?.json) {
    // a reload of unchanged files: kept, as the most recently used
    maps.delete(key)
    maps.set(key, old)
    return
  }
  if (old) forget(key, old)
  let shipped = shippedMap?.()
  // a map too big to keep decoded: the compiled lines are shown
  const tooBig = (json: string) => json.length * (decodedPerChar + 1) > mapBytesLimit
  if (shipped && tooBig(shipped.json)) shipped = undefined
  if (transform && tooBig(transform.json)) transform = undefined
  if (transform === undefined && shipped === undefined) return
  const size = (transform?.json.length ?? 0) + (shipped?.json.length ?? 0)
  maps.set(key, { filename, transform, shipped, size })
  heldBytes += size
  mappedFiles.set(filename, (mappedFiles.get(filename) ?? 0) + 1)
  trim(key)
  if (!installed) install()
}

/** Drops the least recently used maps over the bounds, never `keep`. */
function trim(keep: string): void {
  for (const [oldest, entry] of maps) {
    if (maps.size <= mapLimit && heldBytes <= mapBytesLimit) break
    if (oldest !== keep) forget(oldest, entry)
    else if (maps.size === 1) break
  }
}

/** Decodes a map's text, counting what the decoded map holds. */
function decode(key: string, entry: MapEntry, json: string): SourceMap {
  const map = new SourceMap(JSON.parse(json))
  const added = json.length * decodedPerChar
  entry.size += added
  heldBytes += added
  trim(key)
  return map
}

function forget(key: string, entry: MapEntry): void {
  maps.delete(key)
  heldBytes -= entry.size
  const n = (mappedFiles.get(entry.filename) ?? 1) - 1
  if (n === 0) mappedFiles.delete(entry.filename)
  else mappedFiles.set(entry.filename, n)
}

function install(): void {
  installed = true
  previous = Error.prepareStackTrace
  Error.prepareStackTrace = (err, frames) => {
    const mapped = mappedFiles.size === 0 ? frames : frames.map(safely)
    if (previous) return previous(err, mapped)
    // V8's own format
    let text: string
    try {
      text = Error.prototype.toString.call(err)
    } catch {
      text = '<error>'
    }
    for (const frame of mapped) text += `\n    at ${frame}`
    return text
  }
}

/** A frame mapped, or as it is when its map says something this cannot read: reading a stack never throws here. */
function safely(frame: NodeJS.CallSite): NodeJS.CallSite {
  try {
    return mapFrame(frame)
  } catch {
    return frame
  }
}

interface Position {
  readonly file: string
  readonly line: number
  readonly column: number
}

function mapFrame(frame: NodeJS.CallSite): NodeJS.CallSite {
  const file = frame.getFileName()
  if (!file || !mappedFiles.has(file)) return frame
  const line = frame.getLineNumber()
  const column = frame.getColumnNumber()
  const hash = (frame as { getScriptHash?: () => string }).getScriptHash?.()
  const key = `${hash}\0${file}`
  const entry = hash ? maps.get(key) : undefined
  if (!entry || line === null || column === null) return frame
  // the most recently used is the last to be dropped
  maps.delete(key)
  maps.set(key, entry)
  const at = { file, line, column }
  let to: Position | undefined = at
  if (entry.transform !== undefined) {
    if (entry.decoded === undefined) {
      try {
        entry.decoded = decode(key, entry, entry.transform.json)
      } catch {
        entry.decoded = null
      }
    }
    to = entry.decoded ? throughTransform(entry.transform, entry.decoded, to) : undefined
  }
  if (to && entry.shipped) to = throughShipped(key, entry, to)
  if (!to || to === at) return frame
  return mappedFrame(frame, at, to)
}

/**
 * Where `at` came from by the transform's map: the same file, or the source an inline map of the
 * input named; undefined when the map does not say.
 */
function throughTransform(transform: TransformMap, map: SourceMap, at: Position): Position | undefined {
  const column = at.line === 1 ? Math.max(1, at.column - transform.shift) : at.column
  const origin = map.findEntry(at.line - 1, column - 1) as {
    originalSource?: string
    originalLine?: number
    originalColumn?: number
  }
  if (origin.originalLine === undefined || origin.originalColumn === undefined) return undefined
  const position = { line: origin.originalLine + 1, column: origin.originalColumn + 1 }
  if (!origin.originalSource || origin.originalSource === transform.own || !transform.place) {
    return { file: at.file, ...position }
  }
  const source = sourceEntry(transform.place, origin.originalSource, map)
  return source === undefined ? undefined : { file: `${transform.place.root}/${source}`, ...position }
}

/**
 * Where `at` came from by the file's shipped map, named as a file of the bundle; `at` itself
 * when the map does not decode, does not say, or names a source outside the bundle.
 */
function throughShipped(key: string, entry: MapEntry, at: Position): Position {
  const shipped = entry.shipped as ShippedMap
  if (entry.shippedDecoded === undefined) {
    try {
      entry.shippedDecoded = decode(key, entry, shipped.json)
    } catch {
      entry.shippedDecoded = null
    }
  }
  if (!entry.shippedDecoded) return at
  const origin = entry.shippedDecoded.findEntry(at.line - 1, at.column - 1) as {
    originalSource?: string
    originalLine?: number
    originalColumn?: number
  }
  if (origin.originalLine === undefined || origin.originalColumn === undefined || !origin.originalSource)
    return at
  const source = sourceEntry(shipped, origin.originalSource, entry.shippedDecoded)
  if (source === undefined) return at
  return {
    file: `${shipped.root}/${source}`,
    line: origin.originalLine + 1,
    column: origin.originalColumn + 1,
  }
}

/** A map's source as a bundle entry (its `sourceRoot` applied); undefined for a URL or a path out of the bundle. */
function sourceEntry(place: MapPlace, source: unknown, map: SourceMap): string | undefined {
  // a map's `sources` may hold anything (Node's SourceMap takes it): only a path names a file
  if (typeof source !== 'string' || source === '') return undefined
  const root = (map.payload as { sourceRoot?: unknown }).sourceRoot
  const rooted = typeof root === 'string' && root !== '' ? path.posix.join(root, source) : source
  if (/^[a-z][a-z0-9+.-]*:/i.test(rooted) || rooted.startsWith('/')) return undefined
  const entry = path.posix.normalize(place.dir === '' ? rooted : path.posix.join(place.dir, rooted))
  return entry.startsWith('../') || entry === '..' ? undefined : entry
}

/** A call site that answers with the original position and file; everything else is the frame's own. */
function mappedFrame(frame: NodeJS.CallSite, at: Position, to: Position): NodeJS.CallSite {
  const text = String(frame)
  // the text names the file as stacks show it, its `sourceURL` when the code has one
  // (compile-module.ts), which stays the name of a position mapped within the same file
  const shownFile = frame.getScriptNameOrSourceURL() || at.file
  const was = `${shownFile}:${at.line}:${at.column}`
  const now = `${to.file === at.file ? shownFile : to.file}:${to.line}:${to.column}`
  const i = text.lastIndexOf(was)
  const shown = i < 0 ? text : `${text.slice(0, i)}${now}${text.slice(i + was.length)}`
  const proto = Object.getPrototypeOf(frame) as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  for (const name of Object.getOwnPropertyNames(proto)) {
    const fn = proto[name]
    if (name !== 'constructor' && typeof fn === 'function') copy[name] = fn.bind(frame)
  }
  copy.getFileName = () => to.file
  copy.getLineNumber = () => to.line
  copy.getColumnNumber = () => to.column
  copy.toString = () => shown
  return copy as unknown as NodeJS.CallSite
}
