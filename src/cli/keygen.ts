import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { moduleNamePattern } from '../bundle/module-name.js'
import { keyIdOf, publicKeyFileText, rawPublicKey } from '../bundle/signing-key.js'
import { nyalaError, reasonOf } from '../errors.js'
import { exitCodes, parse, UsageError } from './common.js'

const keygenHelp = `Usage: nyala keygen --out DIR [--name NAME]

Writes an Ed25519 key pair for signing bundles:
  DIR/NAME.key   the private key (PEM), readable by its owner only (0600):
                 keep it with the deployment pipeline that signs
  DIR/NAME.pub   the public key with its key id: copy it as it is into a
                 host's trust store (bundle.trusted.keys) to trust the key

Existing files are never overwritten.

Options:
  -o, --out DIR    where to write the two files (created if missing)
  -n, --name NAME  file name of the pair (default: nyala-signing)
  -h, --help       show this help`

export async function keygen(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
    name: { type: 'string', short: 'n' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${keygenHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length > 0) throw new UsageError(`keygen takes no arguments, got "${positionals[0]}"`)
  const dir = values.out as string | undefined
  if (!dir) throw new UsageError('keygen needs --out DIR')
  const name = (values.name as string | undefined) ?? 'nyala-signing'
  if (!moduleNamePattern.test(name)) {
    throw new UsageError(`--name "${name}": expected letters, digits, ".", "_" or "-"`)
  }
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const raw = rawPublicKey(publicKey)
  const keyFile = path.resolve(dir, `${name}.key`)
  const pubFile = path.resolve(dir, `${name}.pub`)
  for (const file of [keyFile, pubFile]) {
    if (existsSync(file))
      throw nyalaError('NYALA_ERR_SIGNING_KEY', {
        file,
        reason: 'the file exists; keygen never replaces a key',
      })
  }
  mkdirSync(dir, { recursive: true })
  // 'wx': an existing key is never replaced (a lost private key cannot be made again)
  write(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600)
  write(pubFile, publicKeyFileText(raw, name), 0o644)
  process.stdout.write(
    `key ${keyIdOf(raw)}\n  private: ${keyFile} (keep it secret)\n  public:  ${pubFile} (copy into bundle.trusted.keys)\n`,
  )
  return exitCodes.ok
}

function write(file: string, text: string, mode: number): void {
  try {
    writeFileSync(file, text, { mode, flag: 'wx' })
  } catch (err) {
    throw nyalaError('NYALA_ERR_SIGNING_KEY', { file, reason: reasonOf(err) }, err)
  }
}
