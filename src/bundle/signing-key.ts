import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'

/**
 * Ed25519 keys as Nyala writes them. A public key is its 32 raw bytes in
 * base64url; its id is the first 16 hex digits of their sha256: short enough
 * to read in a log line, and only a label (a signature is always checked
 * against the key itself, and keys are counted by their bytes).
 */
export function keyIdOf(raw: Buffer): string {
  return createHash('sha256').update(raw).digest('hex').slice(0, 16)
}

/** The raw 32 bytes of an Ed25519 public key. */
export function rawPublicKey(key: KeyObject): Buffer {
  const x = key.export({ format: 'jwk' }).x
  if (typeof x !== 'string') throw new Error('not an Ed25519 key')
  return Buffer.from(x, 'base64url')
}

/** An Ed25519 public key from its raw bytes (base64url). */
export function publicKeyFromRaw(base64url: string): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: base64url }, format: 'jwk' })
}

/** A private key file's key and the id of its public half; throws when the file holds no Ed25519 private key. */
export function readPrivateKey(pem: string): { key: KeyObject; keyId: string } {
  const key = createPrivateKey(pem)
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`an ${key.asymmetricKeyType ?? 'unknown'} key, expected an Ed25519 private key`)
  }
  return { key, keyId: keyIdOf(rawPublicKey(createPublicKey(key))) }
}

/** The text of a `.pub` file: a properties file an operator can read, copy into a trust store, and annotate. */
export function publicKeyFileText(raw: Buffer, name: string): string {
  return [
    `# Nyala signing key "${name}": copy this file into a host's bundle.trusted.keys directory to trust it.`,
    '# Optional lines: expires=<ISO date> (signatures are refused from then on; a date alone is 00:00 UTC), revoked=true.',
    `key-id=${keyIdOf(raw)}`,
    'algorithm=ed25519',
    `public-key=${raw.toString('base64url')}`,
    '',
  ].join('\n')
}
