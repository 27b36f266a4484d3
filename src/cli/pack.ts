import { existsSync, readFileSync, statSync } from 'node:fs'
import { openBundle } from '../bundle/open-bundle.js'
import { packDirectory } from '../bundle/pack.js'
import type { SigningOptions } from '../bundle/sign-bundle.js'
import { readPrivateKey } from '../bundle/signing-key.js'
import { nyalaError, reasonOf } from '../errors.js'
import { exitCodes, parse, UsageError } from './common.js'

const packHelp = `Usage: nyala pack <dir> [-o out.zip] [--sign KEYFILE ...] [--sequence N]

Packs a module source directory (with module.properties at its root) into a
bundle. The bundle is validated after packing, as the host would open it.

Options:
  -o, --out FILE     output file (default: <dir>.zip)
  --sign KEYFILE     sign with this Ed25519 private key (from nyala keygen);
                     repeat it to sign with several keys (a key rotation)
  --sequence N       the release sequence signed into the bundle; a host
                     refuses a lower one than it runs (default: seconds
                     since the epoch)
  -h, --help         show this help`

export async function pack(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
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
  // validate the source first: a bundle the host would refuse is not written
  const source = await openBundle(dir)
  const out = await packDirectory(dir, { out: values.out as string | undefined, sign })
  const bundle = await openBundle(out, { name: source.name })
  const signed = sign
    ? `, signed by ${sign.keys.map((k) => k.keyId).join(' ')}, sequence ${sign.sequence}`
    : ''
  process.stdout.write(
    `${out}: module ${bundle.name} ${bundle.manifest.version}, ${bundle.files.size} files, sha256 ${bundle.hash.slice(0, 12)}${signed}\n`,
  )
  return exitCodes.ok
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
