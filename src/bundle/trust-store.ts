import { readdirSync } from 'node:fs'
import path from 'node:path'
import { readPropertiesFile } from '../config/read-properties.js'
import { nyalaError } from '../errors.js'
import { keyIdOf, publicKeyFromRaw } from './signing-key.js'

/** One `.pub` file of the trust store, as plain data (it crosses to the bundle reader's thread). */
export interface TrustedKey {
  readonly keyId: string
  /** The raw public key, base64url. */
  readonly publicKey: string
  /** The `.pub` file it came from. */
  readonly file: string
  /** Epoch milliseconds after which its signatures are refused. */
  readonly expires: number | undefined
  readonly revoked: boolean
}

/** What a bundle must carry to be loaded (`bundle.signature.*`, `bundle.trusted.keys`). */
export interface TrustPolicy {
  /** An unsigned bundle is refused. */
  readonly required: boolean
  /** Distinct trusted keys whose signatures must verify. */
  readonly threshold: number
  /** The trust store directory, for messages. */
  readonly dir: string
  readonly keys: readonly TrustedKey[]
}

/**
 * Reads every `.pub` file of a trust store. A missing directory is an empty
 * store (so `required=false` needs no directory); a key file that cannot be
 * used is an error naming it, never a key silently left out: an operator who
 * revokes a key by editing its file must not end up trusting what it signed.
 */
export function readTrustStore(dir: string): TrustedKey[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw nyalaError('NYALA_ERR_TRUSTED_KEY_INVALID', {
      file: dir,
      key: 'bundle.trusted.keys',
      value: dir,
      expected: `a readable directory (${(err as Error).message})`,
    })
  }
  return names
    .filter((n) => n.endsWith('.pub'))
    .sort()
    .map((n) => readKeyFile(path.join(dir, n)))
}

/** Reads and checks one `.pub` file (a key file that cannot be used is an error naming it). */
export function readKeyFile(file: string): TrustedKey {
  const values = readPropertiesFile(file) ?? new Map<string, string>()
  const bad = (key: string, value: string, expected: string) =>
    nyalaError('NYALA_ERR_TRUSTED_KEY_INVALID', { file, key, value, expected })
  const algorithm = values.get('algorithm') ?? ''
  if (algorithm !== 'ed25519') throw bad('algorithm', algorithm, '"ed25519"')
  const publicKey = values.get('public-key') ?? ''
  const raw = Buffer.from(publicKey, 'base64url')
  if (raw.length !== 32 || raw.toString('base64url') !== publicKey) {
    throw bad(
      'public-key',
      publicKey,
      'an Ed25519 public key: 32 bytes in base64url, as nyala keygen writes it',
    )
  }
  try {
    publicKeyFromRaw(publicKey)
  } catch (err) {
    throw bad('public-key', publicKey, `an Ed25519 public key (${(err as Error).message})`)
  }
  const keyId = values.get('key-id') ?? ''
  // the id is a label read by people; a file whose label lies about its key is refused
  if (keyId !== keyIdOf(raw)) throw bad('key-id', keyId, `${keyIdOf(raw)}, the id of public-key`)
  let expires: number | undefined
  const expiresText = values.get('expires')
  if (expiresText !== undefined && expiresText !== '') {
    expires = Date.parse(expiresText)
    if (Number.isNaN(expires))
      throw bad('expires', expiresText, 'an ISO date such as 2027-01-31 or 2027-01-31T12:00:00Z')
  }
  const revokedText = values.get('revoked') ?? 'false'
  if (revokedText !== 'true' && revokedText !== 'false') throw bad('revoked', revokedText, 'true or false')
  return Object.freeze({ keyId, publicKey, file, expires, revoked: revokedText === 'true' })
}

/**
 * The trust policy as it is now: the store is read on each call, so a key
 * added, expired or revoked by editing `bundle.trusted.keys` applies to the
 * next reload without a restart. Start-up and the CLI read it this way; a
 * reload asks `trustPolicyNow` (trust-store-cache.ts), which reads only what
 * changed since the last reload.
 */
export function currentTrustPolicy(settings: {
  readonly required: boolean
  readonly threshold: number
  readonly trustedKeysDir: string
}): TrustPolicy {
  return Object.freeze({
    required: settings.required,
    threshold: settings.threshold,
    dir: settings.trustedKeysDir,
    keys: Object.freeze(readTrustStore(settings.trustedKeysDir)),
  })
}
