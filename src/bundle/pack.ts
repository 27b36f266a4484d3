import { lstat, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parseProperties } from '../config/read-properties.js'
import { nyalaError } from '../errors.js'
import { parseManifest } from './manifest.js'
import { moduleNameOf } from './module-name.js'
import { type PackedPackage, productionPackages, readPackageJson } from './pack-dependencies.js'
import { packRules } from './pack-rules.js'
import type { BundleFiles } from './read-zip.js'
import { type SigningOptions, signatureFor } from './sign-bundle.js'
import { signatureEntry } from './signature-format.js'
import { writeZip } from './zip-writer.js'

/**
 * Changes the files of a bundle before they are zipped (entry -> content; entries may be added,
 * renamed or removed). The seam where `nyala pack` precompiles sources; see src/cli/pack-transform.ts.
 */
export type PackTransform = (
  files: Map<string, Buffer>,
  source: { readonly dir: string },
) => Promise<Map<string, Buffer>>

export interface PackOptions {
  /** Output file. @default `<dir>.zip` beside the directory */
  readonly out?: string | undefined
  /** Deflate level 0-9. @default 6 */
  readonly level?: number
  /** Applied to the selected files before zipping. @default the files unchanged */
  readonly transform?: PackTransform | undefined
  /** Sign the bundle (`--sign`): a signature entry covering every other entry. @default unsigned */
  readonly sign?: SigningOptions | undefined
}

/** What went into a bundle. */
export interface PackResult {
  /** Absolute path of the bundle (written by `packDirectory`, to be written after `buildBundle`). */
  readonly out: string
  readonly data: Buffer
  /** Every entry with its size, sorted. */
  readonly entries: readonly { readonly entry: string; readonly bytes: number }[]
  /** Sum of the entries' sizes. */
  readonly rawBytes: number
  /** Entries that are the module's own files (not under a packed package's folder). */
  readonly ownFiles: number
  /** Production packages taken from the module's node_modules (empty without package.json). */
  readonly packages: readonly PackedPackage[]
  /** The module's own files the rules left out (tests, dotfiles, `.nyalaignore`, `files`), sorted. */
  readonly leftOut: readonly string[]
}

/**
 * Builds a bundle from a module's source directory, in memory. Without a package.json every
 * file is taken but dot-entries, tests and the other default rules (node_modules as it is).
 * With one, its own files follow the rules (pack-rules.ts) and node_modules holds only the
 * production packages, found as Node finds them (pack-dependencies.ts). Entries are written
 * in sorted order with a fixed date, so packing the same files twice gives the same bytes and
 * the same content hash.
 */
export async function buildBundle(dir: string, opts: PackOptions = {}): Promise<PackResult> {
  const source = path.resolve(dir)
  const out = path.resolve(opts.out ?? `${source.replace(/[/\\]+$/, '')}.zip`)
  const pkg = await readPackageJson(path.join(source, 'package.json'))
  const rules = await packRules(source, await mainOf(source), pkg?.files)
  const files = new Map<string, Buffer>()
  const leftOut: string[] = []
  await walk(source, '', files, (entry, isDir) => {
    if (entry === path.relative(source, out)) return false
    if (isDir && entry === 'node_modules') return pkg === undefined
    // no package.json says which packages are production ones: node_modules goes as it is, but .bin
    if (entry.startsWith('node_modules/')) return !/(^|\/)\./.test(entry)
    const taken = isDir ? rules.takesDirectory(entry) : rules.takesFile(entry)
    if (!taken) leftOut.push(isDir ? `${entry}/` : entry)
    return taken
  })
  const packages = pkg ? await productionPackages(source, pkg) : []
  for (const p of packages) {
    // nested packages are packages of their own: only those production code needs are taken
    await walk(p.dir, '', files, (entry, isDir) => !(isDir && entry === 'node_modules'), `${p.entry}/`)
  }
  const transformed = opts.transform ? await opts.transform(sorted(files), { dir: source }) : files
  const bundle = sorted(transformed)
  // a signature left in the source directory belongs to other bytes: never carried over
  bundle.delete(signatureEntry)
  if (opts.sign) bundle.set(signatureEntry, signatureOf(out, bundle, opts.sign))
  const data = writeZip(out, bundle, opts.level ?? 6)
  const entries = [...bundle].map(([entry, content]) => ({ entry, bytes: content.length }))
  return {
    out,
    data,
    entries,
    rawBytes: entries.reduce((sum, e) => sum + e.bytes, 0),
    ownFiles: entries.filter((e) => !e.entry.startsWith('node_modules/') || pkg === undefined).length,
    packages,
    leftOut: leftOut.sort(),
  }
}

/** Writes a built bundle beside its destination and renames it, so a watcher never sees half a bundle. */
export async function writeBundle(result: PackResult): Promise<string> {
  await mkdir(path.dirname(result.out), { recursive: true })
  const tmp = `${result.out}.${process.pid}.partial`
  await writeFile(tmp, result.data)
  await rename(tmp, result.out)
  return result.out
}

/** Packs a module's source directory into a bundle (a zip usable as `.zip` or `.jar`); returns its path. */
export async function packDirectory(dir: string, opts: PackOptions = {}): Promise<string> {
  return writeBundle(await buildBundle(dir, opts))
}

/** The main file named by module.properties (for the rules, which always take it); validation comes later. */
async function mainOf(dir: string): Promise<string> {
  const text = await readFile(path.join(dir, 'module.properties'), 'utf8').catch(() => '')
  return parseProperties(text).get('main') || 'index.js'
}

function sorted(files: BundleFiles): Map<string, Buffer> {
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

/**
 * Reads the files under `root` into `files` (as `prefix + relative path`), asking `take` for
 * each file and folder. Symbolic links inside are not followed: they could point outside.
 */
async function walk(
  root: string,
  rel: string,
  files: Map<string, Buffer>,
  take: (entry: string, isDir: boolean) => boolean,
  prefix = '',
): Promise<void> {
  for (const name of (await readdir(path.join(root, rel))).sort()) {
    const entry = rel ? `${rel}/${name}` : name
    if (entry === 'META-INF' && !prefix) continue
    const stat = await lstat(path.join(root, entry))
    if (stat.isDirectory()) {
      if (take(entry, true)) await walk(root, entry, files, take, prefix)
    } else if (stat.isFile() && take(entry, false)) {
      files.set(prefix + entry, await readFile(path.join(root, entry)))
    }
  }
}

/** The signature entry for `files`, made for the module name `out` will deploy as. */
function signatureOf(out: string, files: ReadonlyMap<string, Buffer>, sign: SigningOptions): Buffer {
  const name = moduleNameOf(out)
  if (!name) throw nyalaError('NYALA_ERR_BUNDLE_NAME', { bundle: out })
  const text = files.get('module.properties')
  if (!text) throw nyalaError('NYALA_ERR_MANIFEST_MISSING', { bundle: out })
  const { manifest } = parseManifest(out, name, text.toString('utf8'))
  return signatureFor(files, name, manifest.version, sign)
}
