import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Bundle } from '../bundle/open-bundle.js'

/** Where a bundle's files are on disk (its cache directory), once a generation of it has them there. */
const placements = new WeakMap<Bundle, string>()

/**
 * Records that `bundle`'s files are in `dir` (file-cache.ts), as soon as that is decided, before
 * they are written: code compiled meanwhile (a reload compiles ahead while the files are
 * written) is compiled under its place there (`compiledAs`), and runs only once they are. When
 * they cannot be written after all, that code keeps those names (the module then runs from
 * memory, and an addon, the reason for those names, cannot load anyway). True when it was not
 * placed there before.
 */
export function placeBundle(bundle: Bundle, dir: string): boolean {
  if (placements.get(bundle) === dir) return false
  placements.set(bundle, dir)
  return true
}

/** Forgets a placement that failed (the files could not be written): the code then runs from memory. */
export function unplaceBundle(bundle: Bundle, dir: string): void {
  if (placements.get(bundle) === dir) placements.delete(bundle)
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

/**
 * The name V8 compiles an entry under (what `CallSite.getFileName()` answers), and what stack
 * traces show when that is another name (`shown`, a `//# sourceURL=` comment after its code).
 */
export interface CompiledName {
  readonly file: string
  readonly shown?: string | undefined
}

/** Bundles holding a native addon (a `.node` file), by bundle. */
const addonBundles = new WeakMap<Bundle, boolean>()

const holdsAddon = (bundle: Bundle): boolean => {
  let holds = addonBundles.get(bundle)
  if (holds === undefined) {
    holds = [...bundle.files.keys()].some((entry) => entry.endsWith('.node'))
    addonBundles.set(bundle, holds)
  }
  return holds
}

/**
 * How an entry's code is compiled: under its code name, so that stacks name the deployed bundle;
 * but in a bundle that holds a native addon, under its file in the cache directory (its
 * `__filename`), with the code name shown in stacks. The `bindings` package (better-sqlite3,
 * sqlite3 load their addon with it) finds its caller's package by the file names of the stack's
 * frames, and compares them with its own `__filename`: they must be files on disk. Only those
 * bundles, because the name includes the content's directory, so a reload to another content
 * compiles the files again where other bundles call the running generation's compiled wrappers
 * (held-functions.ts). A bundle file name with white space cannot be a `sourceURL`: compiled
 * under the code name, as other bundles; so is an entry whose own name has white space.
 */
export function compiledAs(bundle: Bundle, entry: string): CompiledName {
  const name = codeName(bundle, entry)
  const root = placements.get(bundle)
  if (root === undefined || !holdsAddon(bundle) || /\s/.test(name)) return { file: name }
  return { file: path.join(root, entry), shown: name }
}

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
