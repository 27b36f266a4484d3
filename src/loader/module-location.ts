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

/**
 * The installed package an entry belongs to: `node_modules/<name>` (or `<scope>/<name>`) of its
 * path, the last one; '' for the bundle's own files.
 */
function installedPackageOf(entry: string): string {
  // a folder named node_modules, not one whose name ends with it (vendor_node_modules/): where
  // the entry's last one starts (the "/" found in the prefixed name is the character before)
  const at = `/${entry}`.lastIndexOf('/node_modules/')
  if (at < 0) return ''
  const parts = entry.slice(at + 'node_modules/'.length).split('/')
  const name = parts[0]?.startsWith('@') ? parts.slice(0, 2) : parts.slice(0, 1)
  return `${entry.slice(0, at)}node_modules/${name.join('/')}`
}

/**
 * Per bundle: the installed packages (and '' for the bundle's own files) that hold a native
 * addon, and the entries found to be named on disk or not so far.
 */
const onDisk = new WeakMap<Bundle, { packages: ReadonlySet<string>; named: Map<string, boolean> }>()

/**
 * Whether an entry's frames must name its file on disk: in a bundle holding a native addon, the
 * files of a package that holds one (the callers `bindings` finds the package root from), and
 * files that read frames' file names (`getFileName` in their text: `bindings` compares them with
 * its own `__filename`).
 */
function namedOnDisk(bundle: Bundle, entry: string): boolean {
  let known = onDisk.get(bundle)
  if (!known) {
    const packages = new Set<string>()
    for (const file of bundle.files.keys()) if (file.endsWith('.node')) packages.add(installedPackageOf(file))
    known = { packages, named: new Map() }
    onDisk.set(bundle, known)
  }
  if (known.packages.size === 0) return false
  let yes = known.named.get(entry)
  if (yes === undefined) {
    yes =
      known.packages.has(installedPackageOf(entry)) ||
      (bundle.files.get(entry)?.includes('getFileName') ?? false)
    known.named.set(entry, yes)
  }
  return yes
}

/**
 * How an entry's code is compiled: under its code name, so that stacks name the deployed bundle;
 * but where the `bindings` package (better-sqlite3 and sqlite3 load their addon with it) looks
 * (`namedOnDisk`), under its file in the cache directory (its `__filename`), with the code name
 * shown in stacks. `bindings` finds its caller's package by the file names of the stack's frames
 * (`CallSite.getFileName()`), and compares them with its own `__filename`: they must be files on
 * disk. Only those files, because the name includes the content's directory: a reload to
 * another content compiles them again, where it calls the running generation's compiled wrappers
 * for other files that did not change (held-functions.ts). A code cache cannot serve them either:
 * V8 keeps the name a cache was made under. A code name with white space cannot be a
 * `sourceURL`: such a file (by its bundle's name or its own) is compiled under its code name.
 */
export function compiledAs(bundle: Bundle, entry: string): CompiledName {
  const name = codeName(bundle, entry)
  const root = placements.get(bundle)
  if (root === undefined || !namedOnDisk(bundle, entry) || /\s/.test(name)) return { file: name }
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
