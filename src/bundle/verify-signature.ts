import { verify } from 'node:crypto'
import { nyalaError } from '../errors.js'
import { sha256Hex } from './content-hash.js'
import { safeEntryPath } from './entry-path.js'
import type { BundleFiles } from './read-zip.js'
import {
  type CoveredEntry,
  type SignatureDocument,
  type SignatureInfo,
  signatureEntry,
  signatureFormat,
  signedPayload,
} from './signature-format.js'
import { publicKeyFromRaw } from './signing-key.js'
import type { TrustedKey, TrustPolicy } from './trust-store.js'

/** What is checked: the bundle as read, before any of its code is compiled. */
export interface SignedContent {
  /** The bundle file, for messages. */
  readonly bundle: string
  /** The module name the bundle will load as. */
  readonly name: string
  readonly version: string
  /** Every entry the host uses (the signature entry not among them). */
  readonly files: BundleFiles
  /** The signature entry's bytes, when the bundle has one. */
  readonly signature: Buffer | undefined
  /** Entry names as the zip's central directory lists them; `undefined` for a directory bundle. */
  readonly rawNames: readonly string[] | undefined
  /** True when the zip's central directory could not be listed (a broken end record). */
  readonly unlisted?: boolean
}

/**
 * Checks a bundle's signatures against a trust policy. Returns `undefined` for
 * an unsigned bundle the policy lets through, the signature's facts for a good
 * one, and throws a `NYALA_ERR_BUNDLE_SIGNATURE_*` error otherwise.
 *
 * A signature present is always checked, required or not: a bad one means the
 * bundle was changed after signing. The threshold counts distinct trusted keys
 * whose signatures verify; a signature by a key the store does not know (the
 * old key of a rotation, dropped from the store) is ignored when enough
 * trusted ones verify.
 */
export function verifySignature(
  content: SignedContent,
  policy: TrustPolicy,
  now = Date.now(),
): SignatureInfo | undefined {
  const { bundle } = content
  if (!content.signature) {
    if (policy.required) throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_MISSING', { bundle, dir: policy.dir })
    return undefined
  }
  const malformed = (reason: string) =>
    nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_MALFORMED', { bundle, entry: signatureEntry, reason })
  if (content.unlisted)
    throw malformed('the zip central directory cannot be listed (its end record or zip64 record is broken)')
  if (content.rawNames) refuseDuplicates(bundle, content.rawNames)

  const doc = parseDocument(content.signature, malformed)
  // a signature is for one module's one release: a bundle renamed to deploy as another module is refused
  for (const [what, signed, actual] of [
    ['module', doc.module, content.name],
    ['version', doc.version, content.version],
  ] as const) {
    if (signed !== actual)
      throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_MODULE', { bundle, what, signed, actual })
  }

  const keyIds = checkSignatures(bundle, doc, policy, now)
  checkEntries(bundle, doc.entries, content.files)
  return Object.freeze({ keyIds: Object.freeze(keyIds), sequence: doc.sequence, signedAt: doc.signedAt })
}

function refuseDuplicates(bundle: string, rawNames: readonly string[]): void {
  const seen = new Map<string, number>()
  for (const raw of rawNames) {
    if (raw.endsWith('/')) continue
    // two spellings of one path (`a/b.js`, `./a//b.js`) are one entry to the loader
    const entry = safeEntryPath(raw) ?? raw
    seen.set(entry, (seen.get(entry) ?? 0) + 1)
  }
  for (const [entry, count] of seen) {
    if (count > 1) throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_DUPLICATE_ENTRY', { bundle, entry, count })
  }
}

function parseDocument(bytes: Buffer, malformed: (reason: string) => Error): SignatureDocument {
  let doc: Partial<SignatureDocument>
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Partial<SignatureDocument>
  } catch (err) {
    throw malformed(`not JSON (${(err as Error).message})`)
  }
  if (typeof doc !== 'object' || doc === null) throw malformed('not a JSON object')
  if (doc.format !== signatureFormat)
    throw malformed(`format is ${JSON.stringify(doc.format)}, expected "${signatureFormat}"`)
  if (typeof doc.module !== 'string' || typeof doc.version !== 'string')
    throw malformed('module and version must be strings')
  if (!Number.isSafeInteger(doc.sequence) || (doc.sequence as number) < 0)
    throw malformed('sequence must be a non-negative integer')
  if (typeof doc.signedAt !== 'string' || Number.isNaN(Date.parse(doc.signedAt)))
    throw malformed('signedAt must be an ISO time')
  if (!Array.isArray(doc.entries)) throw malformed('entries must be a list')
  let previous = ''
  for (const e of doc.entries as unknown[]) {
    const ok =
      Array.isArray(e) &&
      e.length === 3 &&
      typeof e[0] === 'string' &&
      Number.isSafeInteger(e[1]) &&
      typeof e[2] === 'string' &&
      /^[0-9a-f]{64}$/.test(e[2])
    if (!ok) throw malformed(`entry ${JSON.stringify(e)} is not [path, size, sha256]`)
    // sorted and unique: one path cannot be covered twice with two hashes
    if ((e[0] as string) <= previous)
      throw malformed(`entries are not sorted and unique at ${JSON.stringify(e[0])}`)
    previous = e[0] as string
  }
  if (!Array.isArray(doc.signatures) || doc.signatures.length === 0) throw malformed('no signatures')
  for (const s of doc.signatures as unknown[]) {
    const sig = s as { keyId?: unknown; signature?: unknown }
    if (typeof sig?.keyId !== 'string' || typeof sig.signature !== 'string') {
      throw malformed('each signature must have a keyId and a signature')
    }
  }
  return doc as SignatureDocument
}

/** The ids of the distinct trusted keys whose signatures verify; throws when fewer than the threshold do. */
function checkSignatures(bundle: string, doc: SignatureDocument, policy: TrustPolicy, now: number): string[] {
  const payload = signedPayload(doc)
  const good = new Map<string, string>() // public key -> key id
  let revoked: TrustedKey | undefined
  let expired: TrustedKey | undefined
  let unknown: string | undefined
  for (const { keyId, signature } of doc.signatures) {
    // every file trusting this key counts: a copy of the .pub under another name must not keep a
    // key alive that the operator revoked or expired in the other
    const copies = policy.keys.filter((k) => k.keyId === keyId)
    const key = copies.find((k) => k.revoked) ?? earliestExpiry(copies)
    if (!key) {
      unknown ??= keyId
      continue
    }
    const bytes = Buffer.from(signature, 'base64')
    if (!verify(null, payload, publicKeyFromRaw(key.publicKey), bytes)) {
      throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_INVALID', { bundle, keyId })
    }
    if (key.revoked) revoked ??= key
    else if (key.expires !== undefined && key.expires <= now) expired ??= key
    else good.set(key.publicKey, key.keyId)
  }
  if (good.size >= policy.threshold) return [...good.values()]
  if (good.size === 0) {
    if (revoked)
      throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED', {
        bundle,
        keyId: revoked.keyId,
        file: revoked.file,
      })
    if (expired) {
      const expires = new Date(expired.expires ?? 0).toISOString()
      throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_KEY_EXPIRED', {
        bundle,
        keyId: expired.keyId,
        expires,
        file: expired.file,
      })
    }
    if (unknown !== undefined)
      throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_UNKNOWN_KEY', { bundle, keyId: unknown, dir: policy.dir })
  }
  throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD', {
    bundle,
    found: good.size,
    keyIds: [...good.values()].join(', ') || 'none',
    threshold: policy.threshold,
  })
}

/** The copy of a key that expires first, or the first copy when none expires; `undefined` for none. */
function earliestExpiry(copies: readonly TrustedKey[]): TrustedKey | undefined {
  let first = copies[0]
  for (const k of copies) {
    if (k.expires !== undefined && (first?.expires === undefined || k.expires < first.expires)) first = k
  }
  return first
}

function checkEntries(bundle: string, covered: readonly CoveredEntry[], files: BundleFiles): void {
  const listed = new Set<string>()
  for (const [entry, size, sha256] of covered) {
    listed.add(entry)
    const content = files.get(entry)
    const mismatch = (reason: string) =>
      nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_ENTRY_MISMATCH', { bundle, entry, reason })
    if (!content) throw mismatch('is missing from the bundle')
    if (content.length !== size) throw mismatch(`has ${content.length} bytes, signed with ${size}`)
    if (sha256Hex(content) !== sha256)
      throw mismatch('has content other than what was signed (sha256 differs)')
  }
  for (const entry of files.keys()) {
    if (!listed.has(entry)) throw nyalaError('NYALA_ERR_BUNDLE_SIGNATURE_UNCOVERED', { bundle, entry })
  }
}

/** The covered-entry list of a bundle's files, sorted as the signature format requires. */
export function coveredEntries(files: BundleFiles): CoveredEntry[] {
  return [...files.keys()].sort().map((entry) => {
    const content = files.get(entry) as Buffer
    return [entry, content.length, sha256Hex(content)] as const
  })
}
