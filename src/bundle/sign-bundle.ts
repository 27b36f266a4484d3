import { type KeyObject, sign } from 'node:crypto'
import type { BundleFiles } from './read-zip.js'
import { type SignatureDocument, signatureFormat, signedPayload } from './signature-format.js'
import { coveredEntries } from './verify-signature.js'

export interface SigningOptions {
  /** Private keys with the ids of their public halves; each adds one signature (several for a key rotation). */
  readonly keys: readonly { readonly key: KeyObject; readonly keyId: string }[]
  /** Release sequence: a host refuses a lower one than it runs. @default seconds since the epoch */
  readonly sequence?: number
  /** Signing time. @default now */
  readonly signedAt?: Date
}

/** The signature entry's bytes for a bundle holding `files` (every entry but the signature itself). */
export function signatureFor(
  files: BundleFiles,
  module: string,
  version: string,
  opts: SigningOptions,
): Buffer {
  const signedAt = opts.signedAt ?? new Date()
  const unsigned: Omit<SignatureDocument, 'signatures'> = {
    format: signatureFormat,
    module,
    version,
    sequence: opts.sequence ?? Math.floor(signedAt.getTime() / 1000),
    signedAt: signedAt.toISOString(),
    entries: coveredEntries(files),
  }
  const payload = signedPayload(unsigned)
  const signatures = opts.keys.map(({ key, keyId }) => ({
    keyId,
    signature: sign(null, payload, key).toString('base64'),
  }))
  // one entry per line: a person can read which files a bundle's signature covers with `unzip -p`
  const entries = unsigned.entries.map((e) => `    ${JSON.stringify(e)}`).join(',\n')
  const head = JSON.stringify({ ...unsigned, entries: [], signatures }, null, 2)
  return Buffer.from(`${head.replace('"entries": []', `"entries": [\n${entries}\n  ]`)}\n`, 'utf8')
}
