/**
 * Edit distance with a swap of two neighbours as one edit (optimal string alignment): "hlelo" is
 * one edit from "hello", as a typist sees it, where plain Levenshtein counts two.
 */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  )
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/**
 * The known name closest to `name`, if it is close enough to be a typo: at most a third of the
 * longer name's letters, at least one. Two edits in a four-letter name are another name ("nope"
 * is not "core"); in a key of twenty letters they are a typo.
 */
export function closest(name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance && d <= Math.max(1, Math.floor(Math.max(name.length, candidate.length) / 3))) {
      best = candidate
      bestDistance = d
    }
  }
  return best
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
