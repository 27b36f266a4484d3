// Runs bundle cases in a worker thread, so the runner can stop a case that hangs
// (terminate) or runs out of memory (resourceLimits) and go on with the next one.
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parentPort, workerData } from 'node:worker_threads'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { isNyalaError } from '../dist/errors.js'
import { BundleReader } from '../dist/loader/bundle-reader.js'
import { bundleCase } from './bundle-cases.js'
import { problemsOf } from './bundle-oracle.js'
import { caseSeed, makeRng } from './rng.js'

const { seed, from, to, ctx, dir, readerEvery, e2eEvery } = workerData
const reader = new BundleReader()
const limits = { maxBytes: ctx.maxBytes, maxEntries: ctx.maxEntries, maxNameBytes: ctx.maxNameBytes }

for (let index = from; index < to; index++) {
  parentPort.postMessage({ type: 'start', index })
  const started = performance.now()
  const rng = makeRng(caseSeed(seed, 'bundle', index))
  const { kind, bytes } = bundleCase(rng, index, ctx)
  const result = await verdict(bytes)
  // every so often the same bytes go through the host's reader thread too (the path a reload
  // takes: file, worker, transfer, syntax check); both must come to the same verdict
  if (readerEvery > 0 && index % readerEvery === 0) {
    const file = path.join(dir, `case-${index}.zip`)
    await writeFile(file, bytes)
    const read = await reader.read(file, { ...limits, name: 'fuzzmod' })
    const code = read.ok ? 'accepted' : read.error.code
    if (code !== result.code && result.failure === undefined) {
      result.failure = 'reader-differs'
      result.detail = `openBundle: ${result.code}, the reader thread: ${code}`
    }
  }
  // a sample goes to a running host afterwards (fuzz/bundle-target.js); not the zips of many
  // entries: the host counts them under its own limit (65,535), not the fuzzer's smaller one
  const e2e = e2eEvery > 0 && index % e2eEvery === 0 && kind !== 'manyEntries' ? bytes : undefined
  parentPort.postMessage({
    type: 'done',
    index,
    kind,
    ms: performance.now() - started,
    size: bytes.length,
    e2e,
    ...result,
  })
}
await reader.close()

async function verdict(bytes) {
  let bundle
  try {
    bundle = await openBundle(path.join(dir, 'fuzzmod.zip'), {
      data: bytes,
      maxBytes: ctx.maxBytes,
      maxEntries: ctx.maxEntries,
      maxNameBytes: ctx.maxNameBytes,
      name: 'fuzzmod',
    })
  } catch (err) {
    if (isNyalaError(err)) return { code: err.code }
    return { code: 'uncoded', failure: 'uncoded', detail: err?.stack ?? String(err) }
  }
  const problems = problemsOf(bundle, bytes, ctx)
  if (problems.length > 0) return { code: 'accepted', failure: 'bad-accept', detail: problems.join('; ') }
  return { code: 'accepted' }
}
