import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { bundleExtensions, moduleNameOf } from '../bundle/module-name.js'
import type { HostOptions, MonitoringType } from '../config/host-options.js'
import type { ModuleRecord } from '../runtime/module-record.js'

/** A place new content for a module may come from, and where it goes once loaded. */
export interface Candidate {
  readonly name: string
  /** The file (or exploded directory) holding the new content. */
  readonly source: string
  /** Where the bundle lives in `modules/` after the commit. */
  readonly target: string
  readonly directory: boolean
  /** The deploy path it came by. */
  readonly type: MonitoringType
}

type Records = ReadonlyMap<string, ModuleRecord>

const isBundleFile = (file: string) => bundleExtensions.includes(path.extname(file).toLowerCase())
const hidden = (file: string) => path.basename(file).startsWith('.')

/** `rel` is a path below the directory it was made relative to. */
const below = (rel: string) => rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)

/**
 * Maps a path to the candidate it is for one deploy path (monitoring type),
 * active or not; `undefined` when the path means nothing to that type.
 * `records` gives the current bundle file of each module (a `.tmp` without a
 * bundle extension replaces whatever file the module has).
 */
export function candidateFor(
  type: MonitoringType,
  file: string,
  options: HostOptions,
  records: Records,
): Candidate | undefined {
  const { modulesDir } = options
  const { stagingDir } = options.autoReload
  if (hidden(file)) return undefined
  const rel = path.relative(modulesDir, file)
  const inModules = below(rel)
  if (type === 'default') {
    if (!inModules) return undefined
    const top = rel.split(path.sep)[0]!
    const topPath = path.join(modulesDir, top)
    // a staging directory kept inside modules/ is not an exploded bundle
    if (top === 'node_modules' || hidden(top) || topPath === stagingDir) return undefined
    const isDir = rel.includes(path.sep) || (!isBundleFile(top) && !path.extname(top))
    if (!isDir && !isBundleFile(top)) return undefined
    const name = moduleNameOf(topPath, isDir)
    return name ? { name, source: topPath, target: topPath, directory: isDir, type } : undefined
  }
  if (type === 'tmpfile') {
    if (!inModules || rel.includes(path.sep) || !file.endsWith('.tmp')) return undefined
    const base = path.basename(file).slice(0, -'.tmp'.length)
    if (isBundleFile(base)) {
      const name = moduleNameOf(base)
      return name
        ? { name, source: file, target: path.join(modulesDir, base), directory: false, type }
        : undefined
    }
    const name = moduleNameOf(`${base}.zip`)
    if (!name) return undefined
    const current = records.get(name)?.file
    const target =
      current && isBundleFile(current) && path.dirname(current) === modulesDir
        ? current
        : path.join(modulesDir, `${base}.zip`)
    return { name, source: file, target, directory: false, type }
  }
  const relStaged = path.relative(stagingDir, file)
  if (!below(relStaged) || relStaged.includes(path.sep) || !isBundleFile(file)) return undefined
  const name = moduleNameOf(file)
  return name
    ? { name, source: file, target: path.join(modulesDir, path.basename(file)), directory: false, type }
    : undefined
}

// the paths of the three types never overlap, but a tie on one file must resolve one way
const typeOrder: readonly MonitoringType[] = ['tmpfile', 'stagingDirectory', 'default']

/** The candidate a path is for any deploy path, active or not (the caller checks which). */
export function classify(file: string, options: HostOptions, records: Records): Candidate | undefined {
  for (const type of typeOrder) {
    const c = candidateFor(type, file, options, records)
    if (c) return c
  }
  return undefined
}

/**
 * Every candidate present now for the given deploy paths: one listing of the
 * modules directory (`default`, `tmpfile`) and one of the staging directory.
 */
export async function scanCandidates(
  options: HostOptions,
  records: Records,
  types: readonly MonitoringType[],
): Promise<Candidate[]> {
  const dirs = new Set<string>()
  if (types.includes('default') || types.includes('tmpfile')) dirs.add(options.modulesDir)
  if (types.includes('stagingDirectory')) dirs.add(options.autoReload.stagingDir)
  const found: Candidate[] = []
  for (const dir of dirs) {
    if (!existsSync(dir)) continue
    for (const dirent of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, dirent.name)
      for (const type of types) {
        // in a modules directory of 1000 bundles, only the .tmp names can be tmpfile candidates
        if (type === 'tmpfile' && !dirent.name.endsWith('.tmp')) continue
        const c = candidateFor(type, file, options, records)
        if (c && (dirent.isFile() || (c.directory && dirent.isDirectory()))) found.push(c)
      }
    }
  }
  return found.sort((a, b) => a.source.localeCompare(b.source))
}

/**
 * The candidates of one module for the given deploy paths, without listing the
 * modules directory: its `.tmp` files can only have a few names, so they are
 * looked up by name (a reload of one module costs the same with 10 or 1000
 * modules installed). The staging directory holds only what is being deployed,
 * so it is listed.
 */
export async function scanModule(
  name: string,
  options: HostOptions,
  records: Records,
  types: readonly MonitoringType[],
): Promise<Candidate[]> {
  const found: Candidate[] = []
  const record = records.get(name)
  if (types.includes('tmpfile')) {
    const { modulesDir } = options
    const bases = new Set([`${name}.tmp`, ...bundleExtensions.map((ext) => `${name}${ext}.tmp`)])
    if (record && path.dirname(record.file) === modulesDir) bases.add(`${path.basename(record.file)}.tmp`)
    for (const base of bases) {
      const file = path.join(modulesDir, base)
      const c = candidateFor('tmpfile', file, options, records)
      if (c?.name === name && existsSync(file)) found.push(c)
    }
  }
  if (types.includes('stagingDirectory')) {
    const staged = await scanCandidates(options, records, ['stagingDirectory'])
    found.push(...staged.filter((c) => c.name === name))
  }
  if (types.includes('default') && record && existsSync(record.file)) {
    const c = candidateFor('default', record.file, options, records)
    if (c) found.push(c)
  }
  return found
}

/**
 * Modules whose bundle in `modules/` is gone (default monitoring type only):
 * of `only` when it names some, so a touch naming modules looks at those alone.
 */
export function removedModules(records: Records, modulesDir: string, only: readonly string[] = []): string[] {
  const looked = only.length > 0 ? only.flatMap((n) => records.get(n) ?? []) : records.values()
  return [...looked]
    .filter((r) => path.dirname(r.file) === modulesDir && !existsSync(r.file))
    .map((r) => r.name)
}
