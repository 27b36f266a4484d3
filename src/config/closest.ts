/** Edit distance, for "did you mean" hints on unknown keys. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost)
    }
    prev = row
  }
  return prev[b.length]!
}

/** The known name closest to `name`, if it is close enough to be a typo. */
export function closest(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  // a third of the name, at least 2 edits: catches typos without suggesting unrelated keys
  return bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined
}

/**
 * What to say after "no X named ...;" so the reader can fix it: the close name when there is one,
 * else the names themselves when they are few, else how many there are and where they are listed.
 * A sentence of its own (no joining punctuation): the JSON answer carries it as `hint`.
 */
export function namesHint(name: string, known: readonly string[], listedBy: string): string {
  const near = closest(name, known)
  if (near) return `did you mean "${near}"?`
  if (known.length === 0) return 'there are none'
  if (known.length <= 8) return `there are: ${[...known].sort().join(', ')}`
  return `there are ${known.length}, ${listedBy} lists them`
}
