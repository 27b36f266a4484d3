import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { nyalaError, reasonOf } from '../errors.js'

/** The parts of a package.json that packing reads. */
export interface PackageJson {
  readonly name?: string
  readonly version?: string
  readonly files?: readonly string[]
  readonly dependencies?: Readonly<Record<string, string>>
  readonly optionalDependencies?: Readonly<Record<string, string>>
  readonly peerDependencies?: Readonly<Record<string, string>>
}

/** An installed package that goes into the bundle. */
export interface PackedPackage {
  readonly name: string
  readonly version: string
  /** Its folder inside the bundle, the same as inside the module directory: `node_modules/a/node_modules/b`. */
  readonly entry: string
  /** Its folder on disk (a symbolic link to a package is followed). */
  readonly dir: string
}

/** Reads a package.json; `undefined` when there is none. */
export async function readPackageJson(file: string): Promise<PackageJson | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR')
      return undefined
    throw nyalaError('NYALA_ERR_PACK_PACKAGE_JSON', { file, reason: reasonOf(err) }, err)
  }
  try {
    const value: unknown = JSON.parse(text)
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new Error('not a JSON object')
    const files = (value as PackageJson).files
    if (files !== undefined && (!Array.isArray(files) || files.some((f) => typeof f !== 'string')))
      throw new Error('"files" is not an array of strings')
    return value as PackageJson
  } catch (err) {
    throw nyalaError('NYALA_ERR_PACK_PACKAGE_JSON', { file, reason: reasonOf(err) }, err)
  }
}

interface Wanted {
  readonly name: string
  /** The folder (inside the module directory) of the package that wants it; '' for the module. */
  readonly from: string
  readonly required: boolean
  readonly by: string
}

/** The folders Node looks in for `name`, required from the package folder `from`: nearest first. */
function candidates(from: string, name: string): string[] {
  const out: string[] = []
  let dir = from
  for (;;) {
    out.push(dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`)
    if (!dir) return out
    // up one package: `node_modules/a/node_modules/@s/b` -> `node_modules/a`
    const cut = dir.lastIndexOf('/node_modules/')
    dir = cut < 0 ? '' : dir.slice(0, cut)
  }
}

async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isDirectory()
  } catch {
    return false
  }
}

/**
 * The production dependencies of the module in `dir`, as installed in its own `node_modules`:
 * the transitive closure of `dependencies` and `optionalDependencies` of its package.json,
 * each found as Node's `require` finds it (the nearest `node_modules` first, then the hoisted
 * ones above, never above `dir`), plus the `peerDependencies` of those packages when they are
 * installed (npm installs them; when not, the host's packages may provide them). A
 * devDependency is only taken when a production package needs it. A missing required package
 * is an error naming it, who needs it and the directory; a missing optional one is skipped.
 * Sorted by folder, so packing is deterministic.
 */
export async function productionPackages(dir: string, pkg: PackageJson): Promise<PackedPackage[]> {
  const found = new Map<string, PackedPackage>()
  const queue: Wanted[] = []
  const want = (p: PackageJson, from: string, by: string) => {
    const optional = p.optionalDependencies ?? {}
    for (const name of Object.keys(p.dependencies ?? {}))
      queue.push({ name, from, by, required: !(name in optional) })
    for (const name of Object.keys(optional)) queue.push({ name, from, by, required: false })
    if (from)
      for (const name of Object.keys(p.peerDependencies ?? {}))
        queue.push({ name, from, by, required: false })
  }
  want(pkg, '', 'the module')
  for (let i = 0; i < queue.length; i++) {
    const w = queue[i]!
    let entry: string | undefined
    for (const c of candidates(w.from, w.name)) {
      if (found.has(c) || (await isDirectory(path.join(dir, c)))) {
        entry = c
        break
      }
    }
    if (entry === undefined) {
      if (!w.required) continue
      throw nyalaError('NYALA_ERR_PACK_DEPENDENCY_MISSING', { package: w.name, by: w.by, dir })
    }
    if (found.has(entry)) continue
    const abs = path.join(dir, entry)
    const own = (await readPackageJson(path.join(abs, 'package.json'))) ?? {}
    const version = own.version ?? '0.0.0'
    found.set(entry, { name: w.name, version, entry, dir: abs })
    want(own, entry, `${w.name}@${version}`)
  }
  return [...found.values()].sort((a, b) => (a.entry < b.entry ? -1 : a.entry > b.entry ? 1 : 0))
}
