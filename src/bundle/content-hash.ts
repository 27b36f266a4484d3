import { createHash } from 'node:crypto'

/** sha256 of bytes, hex: what `Bundle.hash` is for a zip bundle, so bytes on disk compare with it. */
export const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')
