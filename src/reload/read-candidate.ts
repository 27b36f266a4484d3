import { setTimeout as sleep } from 'node:timers/promises'
import type { TrustPolicy } from '../bundle/trust-store.js'
import { trustPolicyNow } from '../bundle/trust-store-cache.js'
import type { HostOptions } from '../config/host-options.js'
import { matchesAnyName } from '../config/name-pattern.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { bundleReader } from '../loader/bundle-reader.js'
import type { Change } from './change.js'
import type { Candidate } from './sources.js'

/** The file vanished before it could be read (renamed away, deleted). */
export const gone: unique symbol = Symbol('gone')

/**
 * Reads a candidate into memory and opens it as a bundle. A file that opens
 * as a whole zip is used at once; one that does not yet (a copy in progress
 * looks exactly like a truncated zip) is read again every
 * `auto.reload.settle.ms` and reported only after `auto.reload.settle.timeout`.
 * Any other refusal (not a zip, unsafe entry, bad manifest) is final at once.
 */
export async function readCandidate(
  c: Candidate,
  options: HostOptions,
  exists: boolean,
  onRetry: (reason: string) => void = () => {},
): Promise<Change | NyalaError | typeof gone> {
  const { settleMs, settleTimeoutMs } = options.autoReload
  const deadline = Date.now() + settleTimeoutMs
  const kind = exists ? 'update' : 'add'
  // a module the operator isolates runs in its own thread, which reads its files itself
  const isolatedByOperator = matchesAnyName(options.isolation.modules, c.name)
  let trust: TrustPolicy
  try {
    // looked at anew for each candidate (read again only when it changed): a key added or revoked
    // applies to the next reload
    trust = await trustPolicyNow(options.signature)
  } catch (err) {
    return err as NyalaError
  }
  for (;;) {
    // read, inflated, hashed and syntax-checked on the bundle reader's worker thread: a big bundle
    // costs the serving thread only the views into the one buffer it comes back in
    const read = await bundleReader.read(c.source, {
      directory: c.directory,
      maxBytes: options.bundleMaxBytes,
      name: c.name,
      leaveIsolated: true,
      isolated: isolatedByOperator,
      trust,
    })
    if (read.ok)
      return { name: c.name, kind, bundle: read.bundle, source: c.source, target: c.target, data: read.data }
    const err = read.error
    const code = err.code
    if (code === 'ENOENT' || code === 'ENOTDIR') return gone
    const retry = code === 'NYALA_ERR_BUNDLE_TRUNCATED' || read.bytesRead === 0
    if (!retry) {
      if (isNyalaError(err)) {
        if (err.code === 'NYALA_ERR_BUNDLE_READ' && /ENOENT/.test(err.message)) return gone
        return err
      }
      return nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: c.source, reason: reasonOf(err) }, err)
    }
    if (Date.now() >= deadline) {
      return nyalaError('NYALA_ERR_BUNDLE_UNSETTLED', {
        bundle: c.source,
        timeout: settleTimeoutMs,
        reason: reasonOf(err),
      })
    }
    onRetry(reasonOf(err))
    await sleep(settleMs)
  }
}
