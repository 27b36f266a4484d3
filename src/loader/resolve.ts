import { createRequire, isBuiltin } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseJsonText } from './json-text.js'
import {
  type MapTarget,
  type PackageMapCode,
  PackageMapFailure,
  resolveExports,
  resolveImports,
} from './package-maps.js'

/**
 * Resolution of a `require` / `import` inside a bundle, as Node does it (the
 * algorithms of Node's "Modules: CommonJS" and "ES modules" documentation),
 * over the bundle's files in memory. `exports` and `imports` maps are read as
 * Node reads them (src/loader/package-maps.ts).
 *
 * Where Node's ES module resolution refuses what CommonJS accepts (a relative
 * specifier without its extension, a directory), an import is resolved as a
 * require would be, as bundlers and TypeScript do: code that runs under Node
 * resolves the same, code written for a bundler loads too. TypeScript files
 * are found where a specifier names the `.js` file TypeScript emits
 * (`./util.js` for `util.ts`) or none (`./util`).
 */

/** `require` (CommonJS conditions) or `import` (ES module conditions, also `import()`). */
export type ResolveMode = 'require' | 'import'

/** A bundle entry, a Node built-in, or a file of the host's own packages (an absolute path). */
export type Resolved =
  | { readonly kind: 'entry'; readonly entry: string }
  | { readonly kind: 'builtin'; readonly id: string }
  | { readonly kind: 'host'; readonly file: string }

/**
 * Why a specifier did not resolve: the text of NYALA_ERR_MODULE_REQUIRE's `{reason}`, and the code
 * Node gives the same failure when it is not "not found" (`ERR_PACKAGE_PATH_NOT_EXPORTED`, ...).
 */
export class ResolveFailure extends Error {
  constructor(
    message: string,
    readonly nodeCode?: PackageMapCode | undefined,
  ) {
    super(message)
  }
}

interface PackageJson {
  name?: unknown
  main?: unknown
  type?: unknown
  exports?: unknown
  imports?: unknown
}

const posix = path.posix
const hostRequire = createRequire(import.meta.url)

// Node 20.19+ resolves `require` with these conditions (module-sync: require(esm) is on), and
// `import` with these; "default" always matches
const conditions: Record<ResolveMode, readonly string[]> = {
  require: ['require', 'node', 'node-addons', 'module-sync'],
  import: ['import', 'node', 'node-addons', 'module-sync'],
}

// CommonJS's extensions, then TypeScript's and JSX's (not Node's: a TS module's own files import
// each other without an extension, as TypeScript and bundlers resolve them)
const fileExtensions = ['', '.js', '.json', '.node', '.ts', '.mts', '.cts', '.tsx', '.jsx']
const indexFiles = ['index.js', 'index.json', 'index.node', 'index.ts', 'index.tsx', 'index.jsx']
// what a TypeScript sources names by the emitted file's extension
const emittedToSource: Record<string, readonly string[]> = {
  '.js': ['.ts', '.tsx', '.jsx'],
  '.mjs': ['.mts'],
  '.cjs': ['.cts'],
}

/** The files of one bundle with the indexes resolution needs, built once per bundle. */
export interface ResolveIndex {
  readonly files: ReadonlyMap<string, unknown>
  /** Every folder that holds a file, as entry prefixes without the trailing slash ('' is the root). */
  readonly folders: ReadonlySet<string>
  /** Parsed package.json files by entry; null when it does not parse. */
  readonly packages: Map<string, PackageJson | null>
  readonly readText: (entry: string) => string
}

const indexes = new WeakMap<ReadonlyMap<string, Buffer>, ResolveIndex>()

/** The resolution index of a bundle's files (cached for the life of the files map). */
export function resolveIndexOf(files: ReadonlyMap<string, Buffer>): ResolveIndex {
  let index = indexes.get(files)
  if (!index) {
    const folders = new Set<string>([''])
    for (const entry of files.keys()) {
      for (let dir = posix.dirname(entry); dir !== '.' && !folders.has(dir); dir = posix.dirname(dir)) {
        folders.add(dir)
      }
    }
    index = { files, folders, packages: new Map(), readText: (e) => files.get(e)!.toString('utf8') }
    indexes.set(files, index)
  }
  return index
}

const join = (dir: string, rel: string) =>
  dir === '' || dir === '.' ? posix.normalize(rel) : posix.join(dir, rel)
const dirOf = (entry: string) => {
  const d = posix.dirname(entry)
  return d === '.' ? '' : d
}

function readPackage(index: ResolveIndex, dir: string): PackageJson | undefined {
  const entry = dir === '' ? 'package.json' : `${dir}/package.json`
  if (!index.files.has(entry)) return undefined
  let pkg = index.packages.get(entry)
  if (pkg === undefined) {
    try {
      const parsed = parseJsonText(index.readText(entry))
      pkg = parsed !== null && typeof parsed === 'object' ? (parsed as PackageJson) : null
    } catch {
      pkg = null
    }
    index.packages.set(entry, pkg)
  }
  if (pkg === null) throw new ResolveFailure(`${entry} is not valid JSON`, 'ERR_INVALID_PACKAGE_CONFIG')
  return pkg
}

/**
 * The nearest package.json at or above `dir`, not looking past a
 * `node_modules` folder (Node's package scope).
 */
export function packageScope(
  index: ResolveIndex,
  dir: string,
): { dir: string; pkg: PackageJson } | undefined {
  for (let d = dir; ; d = dirOf(d)) {
    if (d === 'node_modules' || d.endsWith('/node_modules')) return undefined
    const pkg = readPackage(index, d)
    if (pkg) return { dir: d, pkg }
    if (d === '') return undefined
  }
}

function tryFile(index: ResolveIndex, base: string): string | undefined {
  for (const ext of fileExtensions) {
    const candidate = base + ext
    if (index.files.has(candidate)) return candidate
  }
  const ext = posix.extname(base)
  for (const sourceExt of emittedToSource[ext] ?? []) {
    const candidate = base.slice(0, -ext.length) + sourceExt
    if (index.files.has(candidate)) return candidate
  }
  return undefined
}

function tryIndex(index: ResolveIndex, dir: string): string | undefined {
  for (const file of indexFiles) {
    const candidate = dir === '' ? file : `${dir}/${file}`
    if (index.files.has(candidate)) return candidate
  }
  return undefined
}

function tryDirectory(index: ResolveIndex, dir: string): string | undefined {
  const pkg = readPackage(index, dir)
  const main = pkg && typeof pkg.main === 'string' && pkg.main !== '' ? pkg.main : undefined
  if (main) {
    const base = join(dir, main)
    const found = base.endsWith('/')
      ? tryIndex(index, withoutSlash(base))
      : (tryFile(index, base) ?? tryIndex(index, base))
    if (found) return found
  }
  return tryIndex(index, dir)
}

/** A path without its trailing slashes; the bundle's root is ''. */
const withoutSlash = (p: string) => {
  const trimmed = p.replace(/\/+$/, '')
  return trimmed === '.' ? '' : trimmed
}

/**
 * A file, or a directory (its package.json's main, its index). A path that ends with `/`
 * (`require('./')`, `require('pkg/lib/')`, as published code does) names a directory only, as
 * in Node; it used to be looked up as `lib//index.js`, which is never there.
 */
const tryPath = (index: ResolveIndex, base: string) =>
  base.endsWith('/')
    ? tryDirectory(index, withoutSlash(base))
    : (tryFile(index, base) ?? tryDirectory(index, base))

/** A target of an exports/imports map, which must name an existing file exactly. */
function exactTarget(index: ResolveIndex, pkgDir: string, target: string, what: string): string {
  const entry = join(pkgDir, target)
  if (entry.startsWith('../') || entry === '..') throw new ResolveFailure(`${what} leaves the package`)
  if (index.files.has(entry)) return entry
  throw new ResolveFailure(`${what} maps to ${target}, which is not in the bundle`)
}

function viaExports(
  index: ResolveIndex,
  pkgDir: string,
  pkg: PackageJson,
  subpath: string,
  mode: ResolveMode,
  name: string,
): string {
  let target: MapTarget
  try {
    target = resolveExports(pkg.exports, subpath, conditions[mode])
  } catch (err) {
    if (!(err instanceof PackageMapFailure)) throw err
    throw new ResolveFailure(
      err.missing
        ? `"${subpath}" is not exported by ${name} (its package.json "exports", ${mode} conditions)`
        : `"${subpath}" is not exported by ${name}: its package.json "exports" is invalid: ${err.message}`,
      err.code,
    )
  }
  // an exports target always starts with "./" (package-maps.ts refuses any other)
  const path = target.kind === 'path' ? target.path : target.specifier
  return exactTarget(index, pkgDir, path, `${name} export "${subpath}"`)
}

/** `lodash/fp` -> ['lodash', './fp']; `@scope/x` -> ['@scope/x', '.']. */
function splitPackage(request: string): [name: string, subpath: string] | undefined {
  const parts = request.split('/')
  const scoped = request.startsWith('@')
  if (scoped && parts.length < 2) return undefined
  const name = scoped ? `${parts[0]}/${parts[1]}` : parts[0]!
  if (name === '' || name.startsWith('.') || name.includes('\\') || name.includes('%')) return undefined
  // as Node: "." and what follows the name (`pkg/` is "./", which no exports map has)
  return [name, `.${request.slice(name.length)}`]
}

/**
 * Resolves `request` made by bundle entry `from`. Throws ResolveFailure with
 * the reason when nothing matches.
 */
export function resolveRequest(
  index: ResolveIndex,
  from: string,
  request: string,
  mode: ResolveMode,
): Resolved {
  if (request === '') throw new ResolveFailure('an empty specifier')
  if (request.startsWith('node:') || isBuiltin(request)) {
    if (!isBuiltin(request)) throw new ResolveFailure('no such Node built-in')
    return { kind: 'builtin', id: request }
  }
  if (request.startsWith('file:')) throw new ResolveFailure('file: URLs leave the bundle')
  if (request.startsWith('/') || /^[A-Za-z]:/.test(request)) {
    throw new ResolveFailure('absolute paths are not allowed')
  }
  const fromDir = dirOf(from)
  if (request === '.' || request === '..' || request.startsWith('./') || request.startsWith('../')) {
    const target = join(fromDir, request)
    if (target === '..' || target.startsWith('../')) throw new ResolveFailure('the path leaves the bundle')
    const found = tryPath(index, target === '.' ? '' : target)
    if (!found) throw new ResolveFailure('no such file in the bundle')
    return { kind: 'entry', entry: found }
  }
  if (request.startsWith('#')) {
    const scope = packageScope(index, fromDir)
    // with no "imports" in scope, CommonJS looks for a package of that name, as Node's require does
    if (mode === 'import' || scope?.pkg.imports != null) return viaImports(index, scope, request, mode)
  }
  return resolvePackage(index, fromDir, request, mode)
}

function viaImports(
  index: ResolveIndex,
  scope: ReturnType<typeof packageScope>,
  request: string,
  mode: ResolveMode,
): Resolved {
  if (!scope || scope.pkg.imports == null) {
    throw new ResolveFailure(
      'no package.json "imports" map in scope for a #specifier',
      'ERR_PACKAGE_IMPORT_NOT_DEFINED',
    )
  }
  let target: MapTarget
  try {
    target = resolveImports(scope.pkg.imports, request, conditions[mode])
  } catch (err) {
    if (!(err instanceof PackageMapFailure)) throw err
    throw new ResolveFailure(
      err.missing
        ? `not in package.json "imports" (${mode} conditions)`
        : `package.json "imports": ${err.message}`,
      err.code,
    )
  }
  if (target.kind === 'path') {
    return { kind: 'entry', entry: exactTarget(index, scope.dir, target.path, `import "${request}"`) }
  }
  // an imports target may name a built-in ("#crypto": { "node": "node:crypto" }) or a package
  // ("#dep": "dep"), resolved from the package's folder
  if (isBuiltin(target.specifier)) return { kind: 'builtin', id: target.specifier }
  return resolvePackage(index, scope.dir, target.specifier, mode)
}

function resolvePackage(index: ResolveIndex, fromDir: string, request: string, mode: ResolveMode): Resolved {
  const split = splitPackage(request)
  if (!split) throw new ResolveFailure('not a valid package specifier')
  const [name, subpath] = split
  // self-reference: a package importing itself by name through its own "exports"
  const scope = packageScope(index, fromDir)
  if (scope && scope.pkg.name === name && scope.pkg.exports != null) {
    return { kind: 'entry', entry: viaExports(index, scope.dir, scope.pkg, subpath, mode, name) }
  }
  // the bundle's node_modules folders, nearest first
  for (let dir = fromDir; ; dir = dirOf(dir)) {
    if (!(dir === 'node_modules' || dir.endsWith('/node_modules'))) {
      const pkgDir = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`
      if (index.folders.has(pkgDir)) {
        const pkg = readPackage(index, pkgDir)
        if (pkg && pkg.exports != null) {
          return { kind: 'entry', entry: viaExports(index, pkgDir, pkg, subpath, mode, name) }
        }
        const base = subpath === '.' ? pkgDir : join(pkgDir, subpath)
        const found = tryPath(index, base)
        if (found) return { kind: 'entry', entry: found }
        // an ES module import stops at the first folder of that name; require looks further up
        if (mode === 'import') throw new ResolveFailure(`${request} is not in ${pkgDir}`)
      }
    }
    if (dir === '') break
  }
  return resolveHost(request, mode)
}

/** A package of the host itself (the server's own node_modules). */
function resolveHost(request: string, mode: ResolveMode): Resolved {
  try {
    const file =
      mode === 'require' ? hostRequire.resolve(request) : fileURLToPath(import.meta.resolve(request))
    return { kind: 'host', file }
  } catch (err) {
    throw new ResolveFailure(`not in the bundle and not a host package (${(err as Error).message})`)
  }
}
