// Counting outcomes per target: a class (the mutation kind or request shape) by verdict,
// and every failure with what replays it.

export class Tally {
  constructor(target) {
    this.target = target
    this.cases = 0
    this.byClass = new Map()
    this.verdicts = new Map()
    this.failures = []
    /** Cases that took more than half their time bound. */
    this.slow = []
    this.started = performance.now()
    this.ms = 0
    this.lastProgress = this.started
  }

  /** One case: its class, its verdict (`accepted`, a code, a status), and a failure if any. */
  add(index, cls, verdict, failure, detail, ms = 0) {
    this.cases++
    const row = this.byClass.get(cls) ?? { cases: 0, failures: 0, ms: 0, verdicts: new Map() }
    row.cases++
    row.ms += ms
    row.verdicts.set(verdict, (row.verdicts.get(verdict) ?? 0) + 1)
    this.verdicts.set(verdict, (this.verdicts.get(verdict) ?? 0) + 1)
    this.byClass.set(cls, row)
    // a line every 10 s on stderr, so a long run shows it is alive
    if (performance.now() - this.lastProgress > 10_000) {
      this.lastProgress = performance.now()
      process.stderr.write(`  ${this.target}: ${this.cases} cases, ${this.failures.length} failure(s)\n`)
    }
    if (failure) {
      row.failures++
      this.failures.push({ index, cls, failure, detail: String(detail ?? '').slice(0, 2000) })
    }
  }

  finish() {
    this.ms = performance.now() - this.started
    return this
  }

  print(seed, out = process.stdout) {
    const w = (s) => out.write(`${s}\n`)
    w(
      `\n== ${this.target}: ${this.cases} cases in ${(this.ms / 1000).toFixed(1)} s, ${this.failures.length} failure(s)`,
    )
    const classes = [...this.byClass].sort(([a], [b]) => a.localeCompare(b))
    const width = Math.max(8, ...classes.map(([c]) => c.length))
    w(`  ${'class'.padEnd(width)}  cases  failures  ms/case  top verdicts`)
    for (const [cls, row] of classes) {
      const top = [...row.verdicts]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 4)
        .map(([v, n]) => `${v} ${n}`)
        .join(', ')
      w(
        `  ${cls.padEnd(width)}  ${String(row.cases).padStart(5)}  ${String(row.failures).padStart(8)}  ${(row.ms / row.cases).toFixed(1).padStart(7)}  ${top}`,
      )
    }
    w(
      `  verdicts: ${[...this.verdicts]
        .sort((a, b) => b[1] - a[1])
        .map(([v, n]) => `${v} ${n}`)
        .join(', ')}`,
    )
    for (const f of this.failures.slice(0, 20)) {
      w(
        `  FAIL ${f.failure} [${f.cls}] case ${f.index} (replay: --seed ${seed} --only ${this.target} --case ${f.index})`,
      )
      w(`       ${f.detail.split('\n').slice(0, 6).join('\n       ')}`)
    }
    if (this.failures.length > 20) w(`  ... and ${this.failures.length - 20} more failure(s)`)
  }
}
