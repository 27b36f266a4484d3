import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import path from 'node:path'
import { bundleExtensions, moduleNameOf } from '../bundle/module-name.js'
import type { HostOptions } from '../config/host-options.js'
import type { ModuleRecord } from '../runtime/module-record.js'

/** A place new content for a module may come from, and where it goes once loaded. */
export interface Candidate {
  readonly name: string
  /** The file (or exploded directory) holding the new content. */
  readonly source: string
  /** Where the bundle lives in `modules/` after the commit. */
  readonly target: string
  readonly directory: boolean
}

const isBundleFile = (file: string) => bundleExtensions.includes(path.extname(file).toLowerCase())
const hidden = (file: string) => path.basename(file).startsWith('.')

/**
 * Maps a path the watcher reported to the candidate it belongs to, for the
 * configured monitoring type; `undefined` when the path means nothing to it.
 * `records` gives the current bundle file of each module (a `.tmp` without a
 * bundle extension replaces whatever file the module has).
 */
export function candidateOf(
  file: string,
  options: HostOptions,
  records: ReadonlyMap<string, ModuleRecord>,
): Candidate | undefined {
  const { modulesDir } = options
  const { monitoringType, stagingDir } = options.autoReload
  if (hidden(file)) return undefined
  const rel = path.relative(modulesDir, file)
  const inModules = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)
  if (monitoringType === 'default') {
    if (!inModules) return undefined
    const top = rel.split(path.sep)[0]!
    const topPath = path.join(modulesDir, top)
    if (top === 'node_modules' || hidden(top)) return undefined
    const isDir = rel.includes(path.sep) || (!isBundleFile(top) && !path.extname(top))
    if (!isDir && !isBundleFile(top)) return undefined
    const name = moduleNameOf(topPath, isDir)
    return name ? { name, source: topPath, target: topPath, directory: isDir } : undefined
  }
  if (monitoringType === 'tmpfile') {
    if (!inModules || rel.includes(path.sep) || !file.endsWith('.tmp')) return undefined
    const base = path.basename(file).slice(0, -'.tmp'.length)
    if (isBundleFile(base)) {
      const name = moduleNameOf(base)
      return name ? { name, source: file, target: path.join(modulesDir, base), directory: false } : undefined
    }
    const name = moduleNameOf(`${base}.zip`)
    if (!name) return undefined
    const current = records.get(name)?.file
    const target =
      current && isBundleFile(current) && path.dirname(current) === modulesDir
        ? current
        : path.join(modulesDir, `${base}.zip`)
    return { name, source: file, target, directory: false }
  }
  const relStaged = path.relative(stagingDir, file)
  if (relStaged === '' || relStaged.startsWith('..') || relStaged.includes(path.sep)) return undefined
  if (!isBundleFile(file)) return undefined
  const name = moduleNameOf(file)
  return name
    ? { name, source: file, target: path.join(modulesDir, path.basename(file)), directory: false }
    : undefined
}

/** Every candidate present now for the monitoring type (touch file, rescan). */
export async function scanCandidates(
  options: HostOptions,
  records: ReadonlyMap<string, ModuleRecord>,
): Promise<Candidate[]> {
  const dir =
    options.autoReload.monitoringType === 'stagingDirectory'
      ? options.autoReload.stagingDir
      : options.modulesDir
  if (!existsSync(dir)) return []
  // beside 1000 bundles, only the few `.tmp` files are worth a closer look
  const worth =
    options.autoReload.monitoringType === 'tmpfile' ? (name: string) => name.endsWith('.tmp') : () => true
  const found: Candidate[] = []
  for (const dirent of await readdir(dir, { withFileTypes: true })) {
    if (!worth(dirent.name)) continue
    const c = candidateOf(path.join(dir, dirent.name), options, records)
    if (c && (dirent.isFile() || (c.directory && dirent.isDirectory()))) found.push(c)
  }
  return found.sort((a, b) => a.source.localeCompare(b.source))
}

/**
 * Modules whose bundle in `modules/` is gone (default monitoring type only);
 * with `only`, among those modules alone (a touch naming modules looks at
 * their bundles, not at every bundle installed).
 */
export function removedModules(
  records: ReadonlyMap<string, ModuleRecord>,
  modulesDir: string,
  only: readonly string[] = [],
): string[] {
  const looked = only.length > 0 ? only.flatMap((n) => records.get(n) ?? []) : [...records.values()]
  return looked.filter((r) => path.dirname(r.file) === modulesDir && !existsSync(r.file)).map((r) => r.name)
}
