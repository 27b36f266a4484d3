import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Bundle } from '../bundle/open-bundle.js'

/** Where a bundle's files are on disk (its cache directory), once a generation of it has them there. */
const placements = new WeakMap<Bundle, string>()

/** Records that `bundle`'s files are in `dir` (file-cache.ts). */
export function placeBundle(bundle: Bundle, dir: string): void {
  placements.set(bundle, dir)
}

/** What module code of one file sees of itself. */
export interface ModuleLocation {
  /** `__filename`, `import.meta.filename`. */
  readonly filename: string
  /** `__dirname`, `import.meta.dirname`. */
  readonly dirname: string
  /** `import.meta.url`. */
  readonly url: string
}

/**
 * Where the code of `entry` is, for `__filename`, `__dirname`, `module.filename`,
 * `require.resolve` and `import.meta.*`: its copy in the bundle's cache
 * directory, so code reading files beside itself finds them on disk. A bundle
 * loaded without a cache (unit tests, tools) gets `<bundle file>/<entry>`, a
 * name that is not on disk. The code itself is compiled from memory under
 * `<bundle file>/<entry>` either way: stack traces name the bundle deployed
 * (and crash attribution finds the module by it).
 */
export function moduleLocation(bundle: Bundle, entry: string): ModuleLocation {
  const root = placements.get(bundle)
  const filename = root === undefined ? `${bundle.file}/${entry}` : path.join(root, entry)
  return { filename, dirname: path.dirname(filename), url: pathToFileURL(filename).href }
}

/**
 * The bundle entry an absolute path names, when it lies in the bundle's cache
 * directory (`require(path.join(__dirname, 'lib/x.js'))`, the `bindings`
 * package's `require(<root>/build/Release/x.node)`); `undefined` otherwise.
 */
export function entryAtPath(bundle: Bundle, file: string): string | undefined {
  const root = placements.get(bundle)
  if (root === undefined) return undefined
  const relative = path.relative(root, path.resolve(file))
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return undefined
  return relative.split(path.sep).join('/')
}
