/**
 * The signature entry of a bundle and the canonical text its signatures cover.
 *
 * The signed bytes are rebuilt from the entry's fields on every check, never
 * taken from the entry, so a verifier and a signer cannot disagree on what was
 * signed. Paths are JSON strings in that text: a name holding a newline or a
 * space cannot make two different entry lists read the same.
 */

/** Where a signed bundle keeps its signatures: beside `jar`'s own manifest, never loaded as module code. */
export const signatureEntry = 'META-INF/NYALA.SIG'

export const signatureFormat = 'nyala-signature-1'

/** One covered entry: path, size in bytes and sha256 (hex) of its inflated content. */
export type CoveredEntry = readonly [path: string, size: number, sha256: string]

export interface SignatureDocument {
  readonly format: typeof signatureFormat
  readonly module: string
  readonly version: string
  /** Rises with every release of the module: a lower one than the running generation's is a rollback. */
  readonly sequence: number
  /** ISO time of signing. */
  readonly signedAt: string
  /** Every entry of the bundle but this one, sorted by path. */
  readonly entries: readonly CoveredEntry[]
  readonly signatures: readonly { readonly keyId: string; readonly signature: string }[]
}

/** What a verified bundle carries: shown by `GET /modules` and `nyala status`, compared on reload. */
export interface SignatureInfo {
  /** Distinct trusted keys whose signatures verified. */
  readonly keyIds: readonly string[]
  readonly sequence: number
  readonly signedAt: string
}

/** The bytes every signature of `doc` signs. */
export function signedPayload(doc: Omit<SignatureDocument, 'signatures'>): Buffer {
  const lines = [
    doc.format,
    `module ${JSON.stringify(doc.module)}`,
    `version ${JSON.stringify(doc.version)}`,
    `sequence ${doc.sequence}`,
    `signed-at ${JSON.stringify(doc.signedAt)}`,
    `entries ${doc.entries.length}`,
  ]
  for (const [entry, size, sha256] of doc.entries) lines.push(`${sha256} ${size} ${JSON.stringify(entry)}`)
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8')
}
