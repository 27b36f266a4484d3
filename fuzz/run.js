#!/usr/bin/env node
// npm run fuzz: mutated bundles, admin API requests and upgrade-socket frames against the
// host's own code and a running host. Seeded (--seed), bounded (--count, --time); prints
// counts per class, every failure with the flags that replay it, and the time spent;
// exits 1 on any failure. See docs/fuzzing.md.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { fuzzAdmin } from './admin-target.js'
import { bundleContext, fuzzBundles, makeBases } from './bundle-target.js'
import { startFuzzHost, startSuccessor } from './host.js'
import { fuzzUpgrade } from './upgrade-target.js'

const defaults = { bundle: 10_000, admin: 5_000, upgrade: 2_000 }
const targets = Object.keys(defaults)

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    count: { type: 'string' },
    'bundle-count': { type: 'string' },
    'admin-count': { type: 'string' },
    'upgrade-count': { type: 'string' },
    time: { type: 'string' },
    only: { type: 'string' },
    case: { type: 'string' },
    'case-timeout': { type: 'string', default: '10000' },
    help: { type: 'boolean' },
  },
})
if (values.help) {
  process.stdout.write(`usage: npm run fuzz -- [--seed N] [--count N | --bundle-count N --admin-count N --upgrade-count N]
       [--time SECONDS] [--only bundle,admin,upgrade] [--case I] [--case-timeout MS]
defaults: ${targets.map((t) => `${defaults[t]} ${t}`).join(', ')}; --count scales all three (bundle N, admin N/2, upgrade N/5)
`)
  process.exit(0)
}

const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed)
const only = values.only ? values.only.split(',') : targets
for (const t of only) if (!targets.includes(t)) throw new Error(`--only: unknown target ${t}`)
const counts = { ...defaults }
if (values.count !== undefined) {
  const n = Number(values.count)
  Object.assign(counts, { bundle: n, admin: Math.ceil(n / 2), upgrade: Math.ceil(n / 5) })
}
for (const t of targets) if (values[`${t}-count`] !== undefined) counts[t] = Number(values[`${t}-count`])
const caseIndex = values.case === undefined ? undefined : Number(values.case)
const range = (t) =>
  caseIndex === undefined ? { from: 0, to: counts[t] } : { from: caseIndex, to: caseIndex + 1 }
// --time bounds the whole run: each target gets its share of what is left
const started = Date.now()
const budgetMs = values.time === undefined ? Number.POSITIVE_INFINITY : Number(values.time) * 1000
const caseTimeoutMs = Number(values['case-timeout'])

process.stdout.write(`nyala fuzz: seed ${seed}, ${only.map((t) => `${counts[t]} ${t}`).join(', ')}\n`)
const dir = await mkdtemp(path.join(tmpdir(), 'nyala-fuzz-'))
const tallies = []
try {
  const bases = await makeBases(dir)
  for (const [i, target] of only.entries()) {
    const left = budgetMs - (Date.now() - started)
    const deadline = Date.now() + left / (only.length - i)
    const common = { seed, ...range(target), deadline, caseTimeoutMs, dir }
    let tally
    if (target === 'bundle') {
      const ctx = bundleContext(bases)
      // the host runs under the in-process size limit, so both come to the same verdicts
      const startHost = () =>
        startFuzzHost(dir, 'bundle-host', `bundle.max.bytes=${ctx.maxBytes}\nauto.reload.modules=false`)
      tally = await fuzzBundles({ ...common, ctx, startHost })
    } else if (target === 'admin') {
      const host = await startFuzzHost(dir, 'admin-host')
      try {
        tally = await fuzzAdmin({ ...common, host })
      } finally {
        await host.stop('SIGKILL')
      }
    } else {
      const successor = await startSuccessor(dir, 'successor')
      const host = await startFuzzHost(dir, 'upgrade-host')
      try {
        tally = await fuzzUpgrade({ ...common, successor, host })
      } finally {
        await successor.stop()
        await host.stop('SIGKILL')
      }
    }
    tally.print(seed)
    tallies.push(tally)
  }
} finally {
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
}
const failures = tallies.reduce((n, t) => n + t.failures.length, 0)
const total = tallies.reduce((n, t) => n + t.cases, 0)
process.stdout.write(
  `\nnyala fuzz: seed ${seed}, ${total} cases (${tallies.map((t) => `${t.cases} ${t.target} in ${(t.ms / 1000).toFixed(1)} s`).join(', ')}), ${failures} failure(s), ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
)
process.exitCode = failures > 0 ? 1 : 0
