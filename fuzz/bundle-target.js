// Target 1: mutated bundles through the host's own reading and validation path
// (openBundle, and every so often the bundle reader thread), in a worker thread the
// runner can stop when a case hangs or runs out of memory.
import { execFile } from 'node:child_process'
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import { Worker } from 'node:worker_threads'
import { packDirectory } from '../dist/bundle/pack.js'
import { defaultMaxNameBytes } from '../dist/bundle/read-zip.js'
import { writeFiles } from '../test/helpers.js'
import { entriesOf, makeBombs, mutationKinds } from './bundle-cases.js'
import { adminToken, get, stillServing } from './host.js'
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
  for (const [name, flags] of [
    ['zip.zip', ['-q', '-r']],
    ['stored.zip', ['-q', '-r', '-0']],
  ]) {
    await run('zip', [...flags, path.join(out, name), '.'], { cwd: src })
    files.push(path.join(out, name))
  }
  const bases = []
  for (const file of files) {
    const bytes = await readFile(file)
    bases.push({ bytes, entries: entriesOf(bytes) })
  }
  const own = writeZip(
    Object.entries(baseFiles).map(([name, text]) => ({ name, data: Buffer.from(text), method: 0 })),
  )
  bases.push({ bytes: own, entries: entriesOf(own) })
  return bases
}

/**
 * The limits the in-process cases run under: smaller than the host's defaults, so bombs
 * and zips of too many entries are cheap to make; the limits are checked the same way
 * whatever their values (the end-to-end cases run under the defaults).
 */
export function bundleContext(
  bases,
  { maxBytes = 4 * 1024 * 1024, maxEntries = 1000, maxNameBytes = defaultMaxNameBytes } = {},
) {
  return { bases, maxBytes, maxEntries, maxNameBytes, bombs: makeBombs(maxBytes) }
}

/**
 * Runs cases [from, to) (or until `deadline`), restarting the worker after a case that
 * hung (no answer within `caseTimeoutMs`) or killed it (out of memory, a crash).
 */
export async function fuzzBundles(opts) {
  const { from = 0, to, deadline, caseTimeoutMs, startHost } = opts
  const tally = new Tally('bundle')
  const sample = []
  let next = from
  while (next < to && Date.now() < deadline) {
    next = await runWorker({ readerEvery: 20, e2eEvery: 47, ...opts, from: next, tally, sample })
  }
  if (sample.length > 0 && startHost) {
    const host = await startHost()
    try {
      await endToEnd(host, sample, tally, caseTimeoutMs)
    } finally {
      await host.stop('SIGKILL')
    }
  }
  return tally.finish()
}

const post = (host, p) =>
  fetch(host.admin(p), { method: 'POST', headers: { authorization: `Bearer ${adminToken}` } }).then(
    async (r) => ({
      status: r.status,
      body: await r.json(),
    }),
  )

/** A refusal that only the full reload makes (the scripts are compiled, the module started). */
const loadCodes = /^NYALA_ERR_(MODULE_|MAIN_|MANIFEST_)/

/**
 * The sampled cases through a running host: each bundle placed as a staged file or a
 * `.tmp` beside the bundle (written aside and renamed, as a deploy does), then a rescan
 * (POST /reload). A refusal must be coded, leave the file where it was and the old
 * generation serving; an accepted bundle must be one openBundle accepted too; the host
 * must stay up throughout.
 */
async function endToEnd(host, sample, tally, caseTimeoutMs) {
  for (const c of sample) {
    const started = performance.now()
    const before = await get(host.url('/fuzzmod/'))
    const target =
      c.index % 2 === 0
        ? path.join(host.root, 'staging', 'fuzzmod.zip')
        : path.join(host.root, 'modules', 'fuzzmod.zip.tmp')
    await writeFile(`${target}.partial`, c.bytes)
    await rename(`${target}.partial`, target)
    const cls = `${c.kind} (host)`
    let result
    try {
      result = await Promise.race([
        post(host, '/reload'),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`no reload verdict within ${caseTimeoutMs} ms`)), caseTimeoutMs),
        ),
      ])
    } catch (err) {
      tally.add(c.index, cls, 'no verdict', 'hang', err.message)
      break
    }
    const { status, body } = result
    const after = await get(host.url('/fuzzmod/'))
    const down = await stillServing(host)
    const failure = (kind, detail) =>
      tally.add(c.index, cls, body.error?.code ?? body.result, kind, detail, performance.now() - started)
    if (down) {
      failure('host-down', down)
      break
    }
    if (body.result === 'failed') {
      const code = body.error?.code ?? ''
      const kept = await stat(target).then(
        () => true,
        () => false,
      )
      if (status !== 422 || !code.startsWith('NYALA_ERR_'))
        failure('uncoded', `${status} ${JSON.stringify(body).slice(0, 500)}`)
      else if (after.body?.generation !== before.body?.generation)
        failure(
          'bad-swap',
          `generation ${before.body?.generation} -> ${after.body?.generation} after a refused bundle`,
        )
      else if (!kept) failure('file-lost', `${target} was removed although the reload failed`)
      else if (
        c.code !== code &&
        !(c.code === 'accepted' && loadCodes.test(code)) &&
        code !== 'NYALA_ERR_BUNDLE_UNSETTLED'
      ) {
        failure('verdict-differs', `openBundle: ${c.code}, the host: ${code}`)
      } else tally.add(c.index, cls, code, undefined, undefined, performance.now() - started)
    } else if (body.result === 'reloaded') {
      if (c.code !== 'accepted')
        failure('bad-accept', `openBundle refused it with ${c.code}, the host loaded it`)
      else tally.add(c.index, cls, 'reloaded', undefined, undefined, performance.now() - started)
    } else tally.add(c.index, cls, body.result, undefined, undefined, performance.now() - started)
    await rm(target, { force: true })
  }
}

function runWorker({
  seed,
  from,
  to,
  deadline,
  caseTimeoutMs,
  dir,
  ctx,
  readerEvery,
  e2eEvery,
  tally,
  sample,
}) {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./bundle-worker.js', import.meta.url), {
      workerData: { seed, from, to, ctx, dir, readerEvery, e2eEvery },
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
      if (m.e2e) sample.push({ index: m.index, kind: m.kind, code: m.code, bytes: Buffer.from(m.e2e) })
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
