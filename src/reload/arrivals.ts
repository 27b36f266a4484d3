import { rename, rm, stat } from 'node:fs/promises'
import type { MonitoringType } from '../config/host-options.js'
import type { Candidate } from './sources.js'

/** On equal arrival times: the `.tmp` beside the module first, then the staged file, then the bundle itself. */
const tieOrder: readonly MonitoringType[] = ['tmpfile', 'stagingDirectory', 'default']

export interface Arrival {
  /** The candidate deployed: the one that arrived last. */
  readonly winner: Candidate
  /** The others, oldest last; each is set aside (see `setAside`). */
  readonly losers: readonly Candidate[]
}

/**
 * Picks which of several candidates of one module is deployed when they are
 * present at once (a `.tmp` and a staged file, say). The rule, documented in
 * docs/deploying.md: the file that arrived last wins, by its inode change
 * time (a rename or a write sets it; `cp -p` cannot backdate it), ties broken
 * by the deploy path (tmpfile, stagingDirectory, default). The same rule holds
 * for files that arrive one after the other with time to reload in between:
 * each is deployed in turn, so the last to arrive is what serves. Candidates
 * whose file is gone are dropped; `undefined` when none is left.
 */
export async function latestArrival(candidates: readonly Candidate[]): Promise<Arrival | undefined> {
  const timed: { c: Candidate; at: bigint }[] = []
  for (const c of candidates) {
    try {
      timed.push({ c, at: (await stat(c.source, { bigint: true })).ctimeNs })
    } catch {
      // gone since it was seen: nothing to deploy from it
    }
  }
  if (timed.length === 0) return undefined
  timed.sort((a, b) =>
    a.at === b.at ? tieOrder.indexOf(a.c.type) - tieOrder.indexOf(b.c.type) : a.at > b.at ? -1 : 1,
  )
  return { winner: timed[0]!.c, losers: timed.slice(1).map((t) => t.c) }
}

/**
 * Moves a losing `.tmp` or staged file out of the way as `<file>.superseded`
 * (the last one kept), so it is neither deleted nor deployed later over the
 * winner. A losing bundle in `modules/` (default type) stays: the winner's
 * commit replaces it and keeps it as `.previous`. Returns where it went.
 */
export async function setAside(c: Candidate): Promise<string | undefined> {
  if (c.type === 'default') return undefined
  const aside = `${c.source}.superseded`
  await rm(aside, { force: true, recursive: true })
  await rename(c.source, aside)
  return aside
}
