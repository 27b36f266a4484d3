import type { Bundle } from '../bundle/open-bundle.js'
import type { BundleReader } from './bundle-reader.js'

/** What reading ahead at start-up did, for its log line. */
export interface PrimeSummary {
  /** Bundles kept as their module's last read. */
  readonly kept: number
  /** Bytes the reader keeps in all afterwards. */
  readonly held: number
  readonly ms: number
}

/**
 * `bundle.reader.prime`: reads each zip bundle ahead on the reader's thread,
 * one at a time so a reload asked for meanwhile waits for one bundle at most,
 * and stops once the reader keeps as much as it may. Directory bundles are
 * read entry by entry on every reload and gain nothing.
 */
export async function primeReader(
  reader: BundleReader,
  bundles: Iterable<Bundle>,
  limits: { readonly maxBytes: number },
  stopped: () => boolean,
): Promise<PrimeSummary> {
  const t0 = performance.now()
  let kept = 0
  let held = 0
  for (const bundle of bundles) {
    if (stopped()) break
    if (bundle.kind !== 'zip') continue
    const result = await reader.prime(bundle.file, limits)
    held = result.held
    if (result.kept) kept++
    if (result.full) break
  }
  return { kept, held, ms: performance.now() - t0 }
}
