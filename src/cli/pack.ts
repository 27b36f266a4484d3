import { existsSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { moduleNameOf } from '../bundle/module-name.js'
import { openBundle } from '../bundle/open-bundle.js'
import { buildBundle, type PackResult, writeBundle } from '../bundle/pack.js'
import type { SigningOptions } from '../bundle/sign-bundle.js'
import { readPrivateKey } from '../bundle/signing-key.js'
import { nyalaError, reasonOf } from '../errors.js'
import { checkSyntax } from '../loader/load-module.js'
import { exitCodes, parse, UsageError } from './common.js'
import { precompileForPack } from './pack-transform.js'

const packHelp = `Usage: nyala pack <dir> [-o out.zip] [--list] [--sign KEYFILE ...]
                  [--sequence N]

Packs a module source directory (with module.properties at its root) into a
bundle. The bundle is validated as the host would open it before it is written.

With a package.json, its production dependencies (dependencies and
optionalDependencies, transitively, not devDependencies) are taken from the
directory's own node_modules; run "npm install --omit=dev" or "npm ci" first.
Left out of the module's own files: dot-entries (.git, .env), test/, tests/,
__tests__/, __mocks__/, coverage/, *.test.*, *.spec.* and lockfiles; a
.nyalaignore (gitignore syntax) adds rules or takes some back (!tests/), and a
"files" array in package.json packs only what it names. module.properties,
package.json and the main file are always packed.

Options:
  -o, --out FILE   output file (default: <dir>.zip)
  -l, --list       list every entry with its size, and what was left out
      --verbose    the same as --list
  --sign KEYFILE   sign with this Ed25519 private key (from nyala keygen);
                   repeat it to sign with several keys (a key rotation)
  --sequence N     the release sequence signed into the bundle; a host refuses
                   a lower one than it runs (default: seconds since the epoch)
  -h, --help       show this help`

export async function pack(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
    list: { type: 'boolean', short: 'l' },
    verbose: { type: 'boolean' },
    sign: { type: 'string', multiple: true },
    sequence: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${packHelp}\n`)
    return exitCodes.ok
  }
  const [dir, ...rest] = positionals
  if (!dir || rest.length > 0) throw new UsageError('pack takes one directory: nyala pack <dir> [-o out.zip]')
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw nyalaError('NYALA_ERR_DIRECTORY_NOT_FOUND', { what: 'module source', path: dir })
  }
  const sign = signingOptions(
    values.sign as unknown as string[] | undefined,
    values.sequence as string | undefined,
  )
  const result = await buildBundle(dir, {
    out: values.out as string | undefined,
    transform: precompileForPack,
    sign,
  })
  // validated before it is written: a bundle the host would refuse never lands where a watcher looks
  // refusals name the source directory (what the user fixes); the module name is the host's: the file's
  // a `.tmp` beside a module's bundle (`-o modules/hello.zip.tmp`) is that module's
  const named = result.out.endsWith('.tmp') ? result.out.slice(0, -'.tmp'.length) : result.out
  const name = moduleNameOf(named) ?? moduleNameOf(path.resolve(dir), true)
  const bundle = await openBundle(dir, name ? { name, data: result.data } : { data: result.data })
  // the host's own syntax check (every script compiles), as `nyala deploy` runs it
  checkSyntax(bundle)
  await writeBundle(result)
  process.stdout.write(`${summary(result, bundle.name, bundle.manifest.version, bundle.hash)}\n`)
  if (sign) {
    process.stdout.write(`signed by ${sign.keys.map((k) => k.keyId).join(' ')}, sequence ${sign.sequence}\n`)
  }
  if (values.list || values.verbose) process.stdout.write(listing(result))
  return exitCodes.ok
}

function summary(r: PackResult, name: string, version: string, hash: string): string {
  const deps = r.entries.length - r.ownFiles
  const files =
    r.packages.length > 0
      ? `${r.entries.length} files (${r.ownFiles} own, ${deps} in ${plural(r.packages.length, 'package')})`
      : `${r.entries.length} files`
  const left = r.leftOut.length > 0 ? `, ${r.leftOut.length} left out` : ''
  const line = `${shown(r.out)}: module ${name} ${version}, ${files}${left}, ${size(r.rawBytes)} raw, ${size(r.data.length)} zipped, sha256 ${hash.slice(0, 12)}`
  if (r.packages.length === 0) return line
  return `${line}\npackages: ${r.packages.map((p) => `${p.name}@${p.version}`).join(' ')}`
}

function listing(r: PackResult): string {
  const lines = r.entries.map((e) => `  ${size(e.bytes).padStart(9)}  ${e.entry}`)
  const out = [`entries (${r.entries.length}):`, ...lines]
  if (r.packages.length > 0) {
    out.push(`packages (${r.packages.length}):`)
    for (const p of r.packages) out.push(`  ${p.name}@${p.version}  ${p.entry}`)
  }
  if (r.leftOut.length > 0) out.push(`left out (${r.leftOut.length}):`, ...r.leftOut.map((e) => `  ${e}`))
  return `${out.join('\n')}\n`
}

/** A path under the current directory as people typed it (modules/x.zip), else absolute. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file)
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/** Bytes as people read them: 812 B, 4.2 kB, 1.3 MB (powers of 1000, as npm pack prints). */
function size(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`
  return `${(bytes / 1e6).toFixed(1)} MB`
}

function signingOptions(
  keyFiles: string[] | undefined,
  sequenceText: string | undefined,
): SigningOptions | undefined {
  if (!keyFiles || keyFiles.length === 0) {
    if (sequenceText !== undefined) throw new UsageError('--sequence goes with --sign KEYFILE')
    return undefined
  }
  let sequence: number | undefined
  if (sequenceText !== undefined) {
    sequence = Number(sequenceText)
    if (!/^\d+$/.test(sequenceText) || !Number.isSafeInteger(sequence)) {
      throw new UsageError(`--sequence "${sequenceText}": expected a non-negative integer`)
    }
  }
  const signedAt = new Date()
  const keys = keyFiles.map((file) => {
    try {
      return readPrivateKey(readFileSync(file, 'utf8'))
    } catch (err) {
      throw nyalaError('NYALA_ERR_SIGNING_KEY', { file, reason: reasonOf(err) }, err)
    }
  })
  return { keys, signedAt, sequence: sequence ?? Math.floor(signedAt.getTime() / 1000) }
}
