// Target 1: mutated bundles through the host's own reading and validation path
// (openBundle, and every so often the bundle reader thread), in a worker thread the
// runner can stop when a case hangs or runs out of memory.
import { execFile } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { Worker } from 'node:worker_threads'
import { packDirectory } from '../dist/bundle/pack.js'
import { defaultMaxNameBytes } from '../dist/bundle/read-zip.js'
import { writeFiles } from '../test/helpers.js'
import { entriesOf, makeBombs, mutationKinds } from './bundle-cases.js'
import { Tally } from './report.js'
import { writeZip } from './zip.js'

const run = promisify(execFile)

/** The module every base bundle holds: valid, so a mutation is the only thing wrong. */
export const baseFiles = {
  'module.properties': 'version=1.0.0\nprefix=/fuzzmod\n',
  'index.js':
    "const util = require('./lib/util.js')\nmodule.exports = { async register (app, ctx) { app.get('/', async () => ({ module: ctx.name, generation: ctx.generation, ok: util.ok() })) } }\n",
  'lib/util.js': 'exports.ok = () => true\n',
  'data/config.json': JSON.stringify({ answer: 42, list: [1, 2, 3] }),
  'README.md': `# fuzzmod\n\n${'A valid module for the fuzzer. '.repeat(40)}\n`,
}

/** Valid bundles: `nyala pack`'s, `zip -r`'s (directory entries), `zip -r -0`'s (stored) and the fuzzer's own. */
export async function makeBases(dir) {
  const src = await writeFiles(path.join(dir, 'src', 'fuzzmod'), baseFiles)
  const out = path.join(dir, 'bases')
  await mkdir(out, { recursive: true })
  const files = [await packDirectory(src, { out: path.join(out, 'pack.zip') })]
  for (const [name, flags] of [['zip.zip', ['-q', '-r']], ['stored.zip', ['-q', '-r', '-0']]]) {
    await run('zip', [...flags, path.join(out, name), '.'], { cwd: src })
    files.push(path.join(out, name))
  }
  const bases = []
  for (const file of files) {
    const bytes = await readFile(file)
    bases.push({ bytes, entries: entriesOf(bytes) })
  }
  const own = writeZip(Object.entries(baseFiles).map(([name, text]) => ({ name, data: Buffer.from(text), method: 0 })))
  bases.push({ bytes: own, entries: entriesOf(own) })
  return bases
}

/**
 * The limits the in-process cases run under: smaller than the host's defaults, so bombs
 * and zips of too many entries are cheap to make; the limits are checked the same way
 * whatever their values (the end-to-end cases run under the defaults).
 */
export function bundleContext(bases, { maxBytes = 4 * 1024 * 1024, maxEntries = 1000, maxNameBytes = defaultMaxNameBytes } = {}) {
  return { bases, maxBytes, maxEntries, maxNameBytes, bombs: makeBombs(maxBytes) }
}

/**
 * Runs cases [from, to) (or until `deadline`), restarting the worker after a case that
 * hung (no answer within `caseTimeoutMs`) or killed it (out of memory, a crash).
 */
export async function fuzzBundles({ seed, from = 0, to, deadline, caseTimeoutMs, dir, ctx, readerEvery = 20 }) {
  const tally = new Tally('bundle')
  let next = from
  while (next < to && Date.now() < deadline) {
    next = await runWorker({ seed, from: next, to, deadline, caseTimeoutMs, dir, ctx, readerEvery, tally })
  }
  return tally.finish()
}

function runWorker({ seed, from, to, deadline, caseTimeoutMs, dir, ctx, readerEvery, tally }) {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./bundle-worker.js', import.meta.url), {
      workerData: { seed, from, to, ctx, dir, readerEvery },
      // a bomb that got past the size limit shows as an out-of-memory crash, not a dead fuzzer
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    })
    let current = from
    let timer
    let settled = false
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(() => finish('hang', `no verdict within ${caseTimeoutMs} ms`), caseTimeoutMs)
    }
    const finish = (failure, detail) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (failure) tally.add(current, mutationKinds[current % mutationKinds.length], failure, failure, detail)
      void worker.terminate()
      resolve(failure ? current + 1 : to)
    }
    worker.on('message', (m) => {
      if (m.type === 'start') {
        current = m.index
        if (Date.now() >= deadline) return finish()
        arm()
        return
      }
      tally.add(m.index, m.kind, m.code, m.failure, m.detail, m.ms)
      if (m.ms > caseTimeoutMs / 2) tally.slow.push({ index: m.index, kind: m.kind, ms: m.ms })
    })
    worker.on('error', (err) => finish('crash', err?.stack ?? String(err)))
    worker.on('exit', (code) => {
      if (!settled && code !== 0) finish('crash', `the worker exited with ${code}`)
      else finish()
    })
    arm()
  })
}
