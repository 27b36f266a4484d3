import { createHash } from 'node:crypto'
import { SourceMap } from 'node:module'

/**
 * Stack traces of transformed code (ES modules, TypeScript) name the original
 * `file:line:column`.
 *
 * Node does not apply source maps to code compiled with `vm.compileFunction`
 * (not even with `process.setSourceMapsEnabled(true)`: checked on Node 20), so
 * the host maps frames itself, in an `Error.prepareStackTrace` installed when
 * the first transformed file is compiled. It runs only when a stack is read;
 * a frame of any other file costs one lookup. A frame is matched to its map by
 * V8's script hash (the SHA-256 of the compiled source), so two generations of
 * the same file, with different code, each map with their own map. Maps are
 * decoded on first use (Node's own `module.SourceMap`) and kept in an LRU of
 * `mapLimit` entries.
 */

/** Source maps kept for stack traces; an older one is dropped (its frames show transformed lines). @default 4096 */
export const mapLimit = 4096

interface MapEntry {
  readonly filename: string
  readonly json: string
  decoded?: SourceMap | undefined
}

const maps = new Map<string, MapEntry>()
/** File names with a registered map, with how many maps each has: most frames are not ours. */
const mappedFiles = new Map<string, number>()
let installed = false
let previous: ((err: Error, frames: NodeJS.CallSite[]) => unknown) | undefined

/** Registers the map of `code`, compiled as `filename`. */
export function registerSourceMap(filename: string, code: string, json: string): void {
  const hash = createHash('sha256').update(code).digest('hex')
  if (maps.has(hash)) return
  maps.set(hash, { filename, json })
  mappedFiles.set(filename, (mappedFiles.get(filename) ?? 0) + 1)
  for (const [key, entry] of maps) {
    if (maps.size <= mapLimit) break
    maps.delete(key)
    const n = (mappedFiles.get(entry.filename) ?? 1) - 1
    if (n === 0) mappedFiles.delete(entry.filename)
    else mappedFiles.set(entry.filename, n)
  }
  if (!installed) install()
}

function install(): void {
  installed = true
  previous = Error.prepareStackTrace
  Error.prepareStackTrace = (err, frames) => {
    const mapped = mappedFiles.size === 0 ? frames : frames.map(mapFrame)
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

function mapFrame(frame: NodeJS.CallSite): NodeJS.CallSite {
  const file = frame.getFileName()
  if (!file || !mappedFiles.has(file)) return frame
  const line = frame.getLineNumber()
  const column = frame.getColumnNumber()
  const hash = (frame as { getScriptHash?: () => string }).getScriptHash?.()
  const entry = hash ? maps.get(hash) : undefined
  if (!entry || line === null || column === null) return frame
  entry.decoded ??= new SourceMap(JSON.parse(entry.json))
  const origin = entry.decoded.findEntry(line - 1, column - 1) as {
    originalLine?: number
    originalColumn?: number
  }
  if (origin.originalLine === undefined || origin.originalColumn === undefined) return frame
  return mappedFrame(frame, file, line, column, origin.originalLine + 1, origin.originalColumn + 1)
}

/** A call site that answers with the original position; everything else is the frame's own. */
function mappedFrame(
  frame: NodeJS.CallSite,
  file: string,
  line: number,
  column: number,
  originalLine: number,
  originalColumn: number,
): NodeJS.CallSite {
  const text = String(frame)
  const at = `${file}:${line}:${column}`
  const i = text.lastIndexOf(at)
  const shown =
    i < 0 ? text : `${text.slice(0, i)}${file}:${originalLine}:${originalColumn}${text.slice(i + at.length)}`
  const proto = Object.getPrototypeOf(frame) as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  for (const name of Object.getOwnPropertyNames(proto)) {
    const fn = proto[name]
    if (name !== 'constructor' && typeof fn === 'function') copy[name] = fn.bind(frame)
  }
  copy.getLineNumber = () => originalLine
  copy.getColumnNumber = () => originalColumn
  copy.toString = () => shown
  return copy as unknown as NodeJS.CallSite
}
