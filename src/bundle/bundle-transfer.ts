import { type ErrorCode, isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { Manifest } from './manifest.js'
import type { Bundle } from './open-bundle.js'

/**
 * A bundle as it crosses a thread boundary: everything but the file contents
 * as a small structured-cloned object, and the contents as one ArrayBuffer with
 * an offset table, transferred rather than copied. Thousands of small Buffers
 * would each be cloned (and most share Node's pool, so they cannot be
 * transferred); one buffer moves in constant time and the receiving side only
 * makes a view per entry.
 */
export interface BundleTransfer {
  readonly name: string
  readonly file: string
  readonly kind: Bundle['kind']
  readonly manifest: Manifest
  readonly hash: string
  readonly warnings: readonly WireError[]
  readonly signature: Bundle['signature']
  /** Entry paths, in the bundle's order. */
  readonly entries: readonly string[]
  /** Byte length of each entry's content in `contents`, laid end to end. */
  readonly lengths: readonly number[]
  readonly contents: ArrayBuffer
  /** The files stayed where the bundle was read (see `Bundle.contentsOmitted`). */
  readonly contentsOmitted?: true | undefined
}

/** An error as it crosses a thread boundary: a NyalaError by code and details, else its message and errno code. */
export type WireError =
  | {
      readonly nyala: true
      readonly code: string
      readonly details: Readonly<Record<string, string | number>>
    }
  | { readonly nyala: false; readonly message: string; readonly code?: string | undefined }

/**
 * The transfer form of a bundle; `contents` goes in the postMessage transfer list.
 * `withContents: false` leaves the files out (an isolated module's: its own
 * thread reads them), and the bundle that arrives says so.
 */
export function bundleToTransfer(bundle: Bundle, withContents = !bundle.contentsOmitted): BundleTransfer {
  const entries: string[] = []
  const lengths: number[] = []
  let total = 0
  for (const [entry, content] of withContents ? bundle.files : []) {
    entries.push(entry)
    lengths.push(content.length)
    total += content.length
  }
  // allocUnsafeSlow: a buffer of its own, never a slice of the shared pool, so it can be transferred
  const contents = Buffer.allocUnsafeSlow(total)
  let at = 0
  for (const content of withContents ? bundle.files.values() : []) {
    content.copy(contents, at)
    at += content.length
  }
  return {
    name: bundle.name,
    file: bundle.file,
    kind: bundle.kind,
    manifest: bundle.manifest,
    hash: bundle.hash,
    warnings: bundle.warnings.map(errorToWire),
    signature: bundle.signature,
    entries,
    lengths,
    contents: contents.buffer as ArrayBuffer,
    ...(withContents ? {} : { contentsOmitted: true as const }),
  }
}

/** The bundle again, its files views into the one transferred buffer, frozen as `openBundle` freezes it. */
export function bundleFromTransfer(t: BundleTransfer): Bundle {
  const files = new Map<string, Buffer>()
  let at = 0
  for (const [i, entry] of t.entries.entries()) {
    const length = t.lengths[i] ?? 0
    files.set(entry, Buffer.from(t.contents, at, length))
    at += length
  }
  return Object.freeze({
    name: t.name,
    file: t.file,
    kind: t.kind,
    manifest: Object.freeze({
      ...t.manifest,
      dependsOn: Object.freeze([...t.manifest.dependsOn]),
      optionalDependsOn: Object.freeze([...t.manifest.optionalDependsOn]),
    }),
    files,
    hash: t.hash,
    // only NyalaErrors are warnings
    warnings: Object.freeze(t.warnings.map((w) => errorFromWire(w) as NyalaError)),
    signature:
      t.signature && Object.freeze({ ...t.signature, keyIds: Object.freeze([...t.signature.keyIds]) }),
    ...(t.contentsOmitted ? { contentsOmitted: true as const } : {}),
  })
}

export function errorToWire(err: unknown): WireError {
  if (isNyalaError(err)) return { nyala: true, code: err.code, details: { ...err.details } }
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return { nyala: false, message: reasonOf(err), code: typeof code === 'string' ? code : undefined }
}

/** A NyalaError rebuilt with `nyalaError` (same code, details and message); any other error with its errno code. */
export function errorFromWire(wire: WireError): NyalaError | NodeJS.ErrnoException {
  if (wire.nyala) return nyalaError(wire.code as ErrorCode, wire.details as never)
  return Object.assign(new Error(wire.message), wire.code === undefined ? {} : { code: wire.code })
}
