import { stat } from 'node:fs/promises'
import path from 'node:path'
import { openBundle } from '../bundle/open-bundle.js'
import { currentTrustPolicy } from '../bundle/trust-store.js'
import { loadHostOptions } from '../config/host-options.js'
import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import { exitCodes, parse, UsageError } from './common.js'

const verifyHelp = `Usage: nyala verify <bundle> [--root DIR] [--config FILE] [--json]

Checks a bundle's signatures against a root's trust store, as that root's
host would when loading it: the keys in bundle.trusted.keys, with
bundle.signature.required and bundle.signature.threshold. Nothing is
compiled or run.

Exit code 0: the host would load it (signed by enough trusted keys, or
unsigned where signatures are not required). Exit code 1: it would refuse
it; the NYALA_ERR_BUNDLE_SIGNATURE_* code says why.

Options:
  --root DIR       the host's root (default: .)
  --config FILE    its configuration file
                   (default: <root>/config/impala.properties)
  --json           print one JSON object instead of text
  -h, --help       show this help`

export async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    config: { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${verifyHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length !== 1) throw new UsageError('verify takes one bundle file')
  const file = path.resolve(positionals[0]!)
  const { options } = loadHostOptions({
    root: values.root as string | undefined,
    config: values.config as string | undefined,
  })
  const trust = currentTrustPolicy(options.signature)
  const print = (record: Record<string, unknown>, text: string) =>
    process.stdout.write(values.json ? `${JSON.stringify(record)}\n` : `${text}\n`)
  try {
    // a directory bundle has its name from the directory, as in modules/
    if (!(await stat(file)).isDirectory() && !/\.(zip|jar)$/i.test(file)) {
      throw new UsageError(`${file}: expected a .zip or .jar bundle, or a bundle directory`)
    }
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: file, reason: reasonOf(err) }, err)
  }
  try {
    const bundle = await openBundle(file, { maxBytes: options.bundleMaxBytes, trust })
    const s = bundle.signature
    const policy = `${trust.required ? 'required' : 'not required'}, ${trust.keys.length} trusted key(s) in ${trust.dir}, threshold ${trust.threshold}`
    print(
      {
        result: 'valid',
        module: bundle.name,
        version: bundle.manifest.version,
        signed: s !== undefined,
        ...(s ? { keyIds: s.keyIds, sequence: s.sequence, signedAt: s.signedAt } : {}),
        required: trust.required,
      },
      s
        ? `valid: ${bundle.name} ${bundle.manifest.version} signed by ${s.keyIds.join(', ')} (sequence ${s.sequence}, signed ${s.signedAt}); signatures ${policy}`
        : `valid: ${bundle.name} ${bundle.manifest.version} is NOT signed; signatures ${policy}`,
    )
    return exitCodes.ok
  } catch (err) {
    if (!isNyalaError(err)) throw err
    print({ result: 'refused', ...err.toJSON() }, `refused: ${err.code}: ${err.message}`)
    return exitCodes.failure
  }
}
