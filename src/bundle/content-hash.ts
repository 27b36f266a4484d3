import { createHash, webcrypto } from 'node:crypto'

/** sha256 of bytes, hex: what `Bundle.hash` is for a zip bundle, so bytes on disk compare with it. */
export const sha256Hex = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')

/** Below this, hashing on the calling thread costs less than the round trip to the thread pool. */
const offThreadBytes = 64 * 1024

/**
 * `sha256Hex`, on libuv's thread pool (WebCrypto's digest) for more than 64 KB: a reload's
 * check of a multi-megabyte bundle on disk does not hash it on the serving thread (~2 ms a MB).
 */
export async function sha256HexOffThread(data: Uint8Array): Promise<string> {
  if (data.byteLength < offThreadBytes) return sha256Hex(data)
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', data)).toString('hex')
}
