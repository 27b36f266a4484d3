import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Bundle } from '../bundle/open-bundle.js'

/** Where the code of one bundle entry believes it lives. */
export interface ModuleLocation {
  /** `__filename`, `import.meta.filename`; the file name stack traces show. */
  readonly filename: string
  /** `__dirname`, `import.meta.dirname`. */
  readonly dirname: string
}

/**
 * The one place that decides `__filename` / `__dirname` / `import.meta.url`
 * of module code: for now the bundle's path joined with the entry (a path
 * inside a zip file, which is not on disk). A cache of a bundle's files on disk
 * plugs in here.
 */
export function moduleLocation(bundle: Bundle, entry: string): ModuleLocation {
  const filename = `${bundle.file}/${entry}`
  return { filename, dirname: path.posix.dirname(filename) }
}

/** `import.meta.url` of a location. */
export const urlOf = (location: ModuleLocation): string => pathToFileURL(location.filename).href

/**
 * The entry whose location `at` is (a file name or a `file:` URL, as
 * `createRequire` takes), the inverse of `moduleLocation`; a folder (ending in
 * `/`) gives a file name inside it. `undefined` for a place outside the bundle.
 */
export function entryAt(bundle: Bundle, at: string | URL): string | undefined {
  let file: string
  try {
    file = typeof at === 'string' && !at.startsWith('file:') ? at : fileURLToPath(at)
  } catch {
    return undefined
  }
  const prefix = `${bundle.file}/`
  if (!file.startsWith(prefix)) return undefined
  const entry = file.slice(prefix.length)
  return entry === '' || entry.endsWith('/') ? `${entry}[folder]` : entry
}
