import { Mutex } from 'async-mutex'

/**
 * One mutex per module name: two reloads of one module never interleave, and
 * reloads of unrelated modules run side by side. A transaction takes every
 * lock of its set in name order, so two transactions never wait on each other
 * in a circle.
 */
export class ModuleLocks {
  readonly #locks = new Map<string, { mutex: Mutex; users: number }>()

  async acquire(names: Iterable<string>): Promise<() => void> {
    const sorted = [...new Set(names)].sort()
    const entries = sorted.map((name) => {
      let entry = this.#locks.get(name)
      if (!entry) {
        entry = { mutex: new Mutex(), users: 0 }
        this.#locks.set(name, entry)
      }
      entry.users++
      return [name, entry] as const
    })
    const releases: (() => void)[] = []
    for (const [, entry] of entries) releases.push(await entry.mutex.acquire())
    return () => {
      for (const release of releases.reverse()) release()
      // forget locks nobody holds or waits for, so the map does not grow with module churn
      for (const [name, entry] of entries) if (--entry.users === 0) this.#locks.delete(name)
    }
  }

  isLocked(name: string): boolean {
    return this.#locks.get(name)?.mutex.isLocked() ?? false
  }
}
