#!/usr/bin/env node
// Runs Nyala's benchmarks: `node bench/run.js [name...] [--duration S] [--rounds N] [--quick]`.
// Each benchmark module exports `run(opts)` resolving { name, table, notes }; the runner
// prints the tables and writes bench/results/latest.json.
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { columnsOf, notesOf, sectionsOf, startNoiseSampler, writeMarkdown } from './report.js'

const benchDir = path.dirname(fileURLToPath(import.meta.url))
const resultsFile = path.join(benchDir, 'results', 'latest.json')

/** Known benchmarks, in the order a bare `node bench/run.js` runs them. */
const benchmarks = {
  dispatch: () => import('./dispatch.js'),
  'reload-under-load': () => import('./reload-under-load.js'),
  'reload-memory': () => import('./reload-memory.js'),
  'reload-kitchen-sink': () => import('./reload-kitchen-sink.js'),
  'reload-big-bundle': () => import('./reload-big-bundle.js'),
  'reload-fsync': () => import('./reload-fsync.js'),
  upgrade: () => import('./upgrade-under-load.js'),
  peers: () => import('./peers.js'),
  scale: () => import('./scale.js'),
  transform: () => import('./transform.js'),
  signature: () => import('./signature.js'),
  console: () => import('./console.js'),
  'cluster-balance': () => import('./cluster-balance.js'),
  cluster: () => import('./cluster.js'),
}

/** Names that stand for several benchmarks: `npm run bench -- reload`. */
const groups = {
  reload: ['reload-under-load', 'reload-memory'],
  workers: ['cluster-balance', 'cluster'],
}

const usage = `Usage: node bench/run.js [benchmark...] [options]

Benchmarks: ${Object.keys(benchmarks).join(', ')} (default: all)
Groups: ${Object.entries(groups)
  .map(([name, members]) => `${name} (${members.join(', ')})`)
  .join(', ')}

Options:
  --duration S   seconds of load per round (default: the benchmark's own;
                 reload-under-load: the whole load; cluster-balance: each keep-alive case)
  --rounds N     rounds per comparison (default: the benchmark's own;
                 reload-memory: checkpoints of 100 reloads, 5 with --quick;
                 reload-kitchen-sink: checkpoints of 50 reloads after reload 10;
                 reload-big-bundle: forced reloads, 12 or 3 with --quick;
                 cluster-balance: rounds of every case, 1 by default)
  --quick        tiny settings for a smoke test (about a second of load per benchmark)
  -h, --help     show this help`

function parseCli(argv) {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        duration: { type: 'string' },
        rounds: { type: 'string' },
        quick: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    return { error: err.message }
  }
  const { values, positionals } = parsed
  if (values.help) return { help: true }
  const names = positionals.flatMap((name) => groups[name] ?? [name])
  const unknown = names.filter((name) => !(name in benchmarks))
  if (unknown.length > 0) return { error: `unknown benchmark "${unknown.join('", "')}"` }
  const number = (flag, integer) => {
    const raw = values[flag]
    if (raw === undefined) return { value: undefined }
    const value = Number(raw)
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
      return { error: `--${flag} wants a positive ${integer ? 'integer' : 'number'}, got "${raw}"` }
    }
    return { value }
  }
  const duration = number('duration', false)
  const rounds = number('rounds', true)
  const bad = duration.error ?? rounds.error
  if (bad) return { error: bad }
  return {
    names: names.length > 0 ? [...new Set(names)] : Object.keys(benchmarks),
    opts: { quick: values.quick, duration: duration.value, rounds: rounds.value },
  }
}

function cell(value) {
  return value === undefined || value === null ? '' : String(value)
}

/** Aligned text rather than console.table: no index column, numbers right-aligned, pasteable. */
function formatTable(rows) {
  const { columns, numeric } = columnsOf(rows)
  const cells = rows.map((row) => columns.map((c) => cell(row[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)))
  const line = (values) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')
}

/** Rows may carry a `section`: one table per section keeps unrelated columns apart. */
function printResult(result) {
  for (const [section, rows] of sectionsOf(result)) {
    console.log(`\n${result.name}${section ? ` - ${section}` : ''}`)
    console.log(formatTable(rows))
  }
  const notes = notesOf(result)
  if (notes.length > 0) console.log('')
  for (const note of notes) console.log(note)
}

/**
 * JSON laid out the way the project's formatter (Biome) lays it out: objects one key per line,
 * arrays of plain values on one line when they fit. results/ is git-ignored but `biome check bench`
 * still reads it, so `npm run lint` would otherwise fail after every benchmark run.
 */
function formatJson(value, indent = '', prefixLength = 0) {
  const inner = `${indent}  `
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]'
    if (value.every((v) => v === null || typeof v !== 'object')) {
      const flat = `[${value.map((v) => JSON.stringify(v) ?? 'null').join(', ')}]`
      if (indent.length + prefixLength + flat.length + 1 <= 110) return flat
      // long number lists are packed several to a line, like Biome does
      if (value.every((v) => typeof v === 'number')) {
        const lines = []
        let line = ''
        for (const [i, v] of value.entries()) {
          const piece = `${JSON.stringify(v)}${i < value.length - 1 ? ',' : ''}`
          if (line && inner.length + line.length + 1 + piece.length > 110) {
            lines.push(line)
            line = piece
          } else line = line ? `${line} ${piece}` : piece
        }
        lines.push(line)
        return `[\n${lines.map((l) => inner + l).join('\n')}\n${indent}]`
      }
    }
    return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`
  }
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined && typeof v !== 'function')
    if (entries.length === 0) return '{}'
    const lines = entries.map(([k, v]) => {
      const key = `${JSON.stringify(k)}: `
      return inner + key + formatJson(v, inner, key.length)
    })
    return `{\n${lines.join(',\n')}\n${indent}}`
  }
  return JSON.stringify(value) ?? 'null'
}

async function main() {
  const cli = parseCli(process.argv.slice(2))
  if (cli.help) {
    console.log(usage)
    return 0
  }
  if (cli.error) {
    console.error(`bench: ${cli.error}\n\n${usage}`)
    return 2
  }

  // benchmarks own child processes: a signal aborts them so they can stop those before we exit
  const controller = new AbortController()
  let interrupted = false
  const onSignal = (signal) => {
    if (interrupted) {
      console.error(`bench: ${signal} again, exiting now`)
      process.exit(130)
    }
    interrupted = true
    console.error(`bench: ${signal}, stopping benchmark processes`)
    controller.abort(new Error(`interrupted by ${signal}`))
    // if a benchmark does not unwind, do not hang the terminal
    setTimeout(() => process.exit(130), 15_000).unref()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  const report = {
    startedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform} ${os.release()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    loadavg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    options: cli.opts,
    benchmarks: {},
  }
  // only a full run of every benchmark writes BENCHMARKS.md and its charts into the repository;
  // a quick run or a run of some benchmarks writes them into results/, so it cannot replace the
  // published tables with a partial set
  const complete = !cli.opts.quick && cli.names.length === Object.keys(benchmarks).length
  const markdownFile = complete
    ? path.join(benchDir, '..', 'BENCHMARKS.md')
    : path.join(benchDir, 'results', 'BENCHMARKS.md')
  const chartDir = complete ? path.join(benchDir, 'charts') : path.join(benchDir, 'results', 'charts')
  report.args = process.argv.slice(2).join(' ')
  const noise = await startNoiseSampler(cli.opts.quick ? 500 : 3000)
  let failed = 0
  for (const name of cli.names) {
    if (interrupted) break
    const mode = cli.opts.quick ? ' (quick)' : ''
    console.log(`bench: running ${name}${mode}`)
    const t0 = performance.now()
    try {
      const mod = await benchmarks[name]()
      const result = await mod.run({
        ...cli.opts,
        signal: controller.signal,
        chartDir,
        progress: (msg) => console.log(`bench: ${name}: ${msg}`),
      })
      const seconds = Math.round((performance.now() - t0) / 100) / 10
      report.benchmarks[name] = { ...result, seconds }
      printResult(result)
      console.log(`bench: ${name} done in ${seconds} s`)
    } catch (err) {
      failed++
      report.benchmarks[name] = { name, error: err?.message ?? String(err) }
      if (controller.signal.aborted) console.error(`bench: ${name} interrupted`)
      else console.error(`bench: ${name} failed: ${err?.stack ?? err}`)
    }
  }
  if (interrupted) return 130
  report.finishedAt = new Date().toISOString()
  report.noise = noise.stop()
  await mkdir(path.dirname(resultsFile), { recursive: true })
  await writeFile(resultsFile, `${formatJson(report)}\n`)
  console.log(`bench: wrote ${path.relative(process.cwd(), resultsFile) || resultsFile}`)
  await writeMarkdown(report, markdownFile)
  console.log(`bench: wrote ${path.relative(process.cwd(), markdownFile) || markdownFile}`)
  return failed > 0 ? 1 : 0
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(`bench: unexpected error: ${err?.stack ?? err}`)
    process.exitCode = 1
  },
)
