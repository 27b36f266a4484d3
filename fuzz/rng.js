// A small seeded generator (mulberry32): the same seed gives the same cases on every machine.
import { createHash } from 'node:crypto'

/** The seed of case `index` of `target`: each case can be replayed alone (--case). */
export function caseSeed(seed, target, index) {
  return createHash('sha256').update(`${seed}/${target}/${index}`).digest().readUInt32LE(0)
}

export function makeRng(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (n) => Math.floor(next() * n)
  return {
    next,
    /** 0 <= x < n */
    int,
    /** lo <= x <= hi */
    range: (lo, hi) => lo + int(hi - lo + 1),
    pick: (list) => list[int(list.length)],
    chance: (p) => next() < p,
    bytes(n) {
      const out = Buffer.allocUnsafe(n)
      for (let i = 0; i < n; i++) out[i] = int(256)
      return out
    },
    /** A weighted choice: [[weight, value], ...] */
    weighted(list) {
      let total = 0
      for (const [w] of list) total += w
      let x = next() * total
      for (const [w, v] of list) {
        x -= w
        if (x < 0) return v
      }
      return list[list.length - 1][1]
    },
  }
}
