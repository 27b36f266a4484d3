import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Bundle } from '../bundle/open-bundle.js'

/** Where a bundle's files are on disk (its cache directory), once a generation of it has them there. */
const placements = new WeakMap<Bundle, string>()

/** Records that `bundle`'s files are in `dir` (file-cache.ts). */
export function placeBundle(bundle: Bundle, dir: string): void {
  placements.set(bundle, dir)
}

/** Where the code of one bundle entry believes it lives. */
export interface ModuleLocation {
  /** `__filename`, `import.meta.filename`, `module.filename`, what `require.resolve` answers. */
  readonly filename: string
  /** `__dirname`, `import.meta.dirname`. */
  readonly dirname: string
}

/**
 * The one place that decides `__filename` / `__dirname` / `import.meta.url`
 * of module code: the entry's copy in the bundle's cache directory, so code
 * reading files beside itself finds them on disk. A bundle loaded without a
 * cache (unit tests, tools) gets `<bundle file>/<entry>`, a name that is not
 * on disk.
 */
export function moduleLocation(bundle: Bundle, entry: string): ModuleLocation {
  const root = placements.get(bundle)
  const filename = root === undefined ? codeName(bundle, entry) : path.join(root, entry)
  return { filename, dirname: path.dirname(filename) }
}

/**
 * The name code is compiled under, whatever `moduleLocation` says: stack
 * traces and source maps name `<bundle file>/<entry>`, the bundle that was
 * deployed, and crash attribution finds the module by it
 * (src/supervise/attribution.ts).
 */
export const codeName = (bundle: Bundle, entry: string): string => `${bundle.file}/${entry}`

/** `import.meta.url` of a location. */
export const urlOf = (location: ModuleLocation): string => pathToFileURL(location.filename).href

/**
 * The entry whose location or code name `at` is (a file name or a `file:` URL,
 * as `createRequire` and an absolute `require` take), the inverse of
 * `moduleLocation` and `codeName`; a folder (ending in `/`) gives a file name
 * inside it. `undefined` for a place outside the bundle.
 */
export function entryAt(bundle: Bundle, at: string | URL): string | undefined {
  let file: string
  try {
    file = typeof at === 'string' && !at.startsWith('file:') ? at : fileURLToPath(at)
  } catch {
    return undefined
  }
  const root = placements.get(bundle)
  for (const prefix of root === undefined ? [`${bundle.file}/`] : [`${root}/`, `${bundle.file}/`]) {
    if (!file.startsWith(prefix)) continue
    const entry = path.posix.normalize(file.slice(prefix.length))
    if (entry.startsWith('..')) return undefined
    return entry === '' || entry === './' || entry.endsWith('/')
      ? `${entry.replace(/^\.\/$/, '')}[folder]`
      : entry
  }
  return undefined
}
