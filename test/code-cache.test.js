import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import test from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { bundleReader } from '../dist/loader/bundle-reader.js'
import {
  codeCacheCounts,
  codeCacheKeyOf,
  codeCacheStats,
  hasCodeCache,
  setCodeCacheLimit,
  storeCodeCache,
} from '../dist/loader/code-cache.js'
import { loadModuleCode } from '../dist/loader/load-module.js'
import { codeName } from '../dist/loader/module-location.js'
import { makeRoot, moduleSource, packWithNyala } from './helpers.js'

const run = promisify(execFile)
const here = path.dirname(fileURLToPath(import.meta.url))
const maxBytes = 64 * 1024 * 1024

// a package big enough that V8 compiles some of its functions lazily, and one whose function throws
const files = {
  'index.js': `const lib = require('lib')
module.exports = { register () {}, value: lib.sum([1, 2, 3]), boom: lib.boom }`,
  'node_modules/lib/package.json': '{ "main": "main.js" }',
  'node_modules/lib/main.js': `'use strict'
function sum (list) {
  return list.reduce((s, x) => s + x, 0)
}
function boom () {
  throw new Error('boom')
}
module.exports = { sum, boom }
`,
}
const scripts = ['index.js', 'node_modules/lib/main.js']

/** Packs the module (with `extra` files) to `modules/m.zip` of `root` (a new root if none). */
async function packed(t, extra = {}, root = undefined) {
  root ??= await makeRoot(t)
  const dir = await moduleSource(root, 'm', { files: { ...files, ...extra } })
  return packWithNyala(dir, path.join(root, 'modules', 'm.zip'))
}

async function read(zip) {
  const result = await bundleReader.read(zip, { maxBytes })
  assert.ok(result.ok, `read ${zip}`)
  return result.bundle
}

const counts = () => ({ ...codeCacheStats })
/** Reads `zip` anew and loads it: how many scripts compiled from a cache. */
async function cachesUsedByNextLoad(zip) {
  const bundle = await read(zip)
  const before = codeCacheStats.used
  loadModuleCode(bundle)
  return codeCacheStats.used - before
}
const isCached = (bundle, entry) => hasCodeCache(codeCacheKeyOf(bundle, entry, codeName(bundle, entry)))

test('a script compiled from source leaves a cache; the next load of the same bytes compiles from it', async (t) => {
  const zip = await packed(t)
  const first = await read(zip)
  const before = counts()
  const one = loadModuleCode(first)
  assert.equal(codeCacheStats.used, before.used, 'nothing cached yet')
  assert.deepEqual([...one.uncached].sort(), [...scripts].sort())
  assert.equal(await bundleReader.makeCodeCaches(first, one.uncached), 2)
  for (const entry of scripts) assert.ok(isCached(first, entry))

  // a new read of the same file: new buffers, the same digests
  const second = await read(zip)
  const two = loadModuleCode(second)
  assert.equal(codeCacheStats.used - before.used, 2)
  assert.equal(codeCacheStats.rejected, before.rejected)
  assert.equal(two.uncached.length, 0, 'nothing left to make a cache of')
  assert.equal(two.exports.value, 6)
  // the code from the cache names the file and line it came from (crash attribution reads them)
  const stack = (() => {
    try {
      two.exports.boom()
    } catch (err) {
      return err.stack
    }
  })()
  assert.match(
    stack,
    new RegExp(`${codeName(second, 'node_modules/lib/main.js').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6:9`),
  )
  assert.equal(await bundleReader.makeCodeCaches(second, two.uncached), 0)

  // the same bytes in another bundle file: a function from a cache keeps the name it was compiled
  // under, so the other bundle's files must not use these caches
  const elsewhere = await read(await packed(t))
  const other = counts()
  const three = loadModuleCode(elsewhere)
  assert.equal(codeCacheStats.used, other.used)
  assert.equal(three.uncached.length, 2)
})

test('a changed file is compiled from its source; its unchanged neighbours still use their caches', async (t) => {
  const root = await makeRoot(t)
  const zip = await packed(t, { 'index.js': `${files['index.js']}\n// v1` }, root)
  const first = await read(zip)
  await bundleReader.makeCodeCaches(first, loadModuleCode(first).uncached)
  // the same module file with new content, as a reload of modules/m.zip sees it: the digest differs
  await packed(t, { 'index.js': `${files['index.js']}\n// v2` }, root)
  const changed = await read(zip)
  assert.notEqual(changed.hash, first.hash)
  const before = counts()
  const code = loadModuleCode(changed)
  assert.equal(code.exports.value, 6)
  assert.equal(codeCacheStats.used - before.used, 1)
  assert.deepEqual([...code.uncached], ['index.js'])
})

test('a bundle opened on this thread (start-up) gets caches made on the reader thread; the next load of it uses them, read or opened', async (t) => {
  const zip = await packed(t)
  const opened = await openBundle(zip)
  const code = loadModuleCode(opened)
  assert.equal(await bundleReader.makeCodeCaches(opened, code.uncached), 2)
  assert.equal(await cachesUsedByNextLoad(zip), 2)
  // and a bundle the reader thread did not read (opened here, or handed over by another process)
  // finds them by digests made on this thread
  const before = codeCacheStats.used
  loadModuleCode(await openBundle(zip))
  assert.equal(codeCacheStats.used - before, 2)
})

test('a cache V8 refuses (made under other V8 flags) is dropped and the script compiles from source', async (t) => {
  const zip = await packed(t)
  // another process, with a V8 flag this one does not have, makes the caches of the same file
  const { stdout } = await run(
    process.execPath,
    ['--no-opt', path.join(here, 'fixtures', 'make-code-caches.js'), zip],
    { timeout: 30_000 },
  )
  const made = JSON.parse(stdout)
  assert.equal(made.length, 2)
  for (const { key, data } of made) storeCodeCache(key, Buffer.from(data, 'base64'))
  const bundle = await read(zip)
  for (const entry of scripts) assert.ok(isCached(bundle, entry))
  const before = counts()
  const code = loadModuleCode(bundle)
  assert.equal(codeCacheStats.rejected - before.rejected, 2)
  assert.equal(codeCacheStats.used, before.used)
  assert.equal(code.exports.value, 6)
  for (const entry of scripts) assert.ok(!isCached(bundle, entry), `${entry}: the refused cache is dropped`)
  // and the scripts it compiled from source give caches of this process's own
  assert.equal(await bundleReader.makeCodeCaches(bundle, code.uncached), 2)
  assert.equal(await cachesUsedByNextLoad(zip), 2)
})

test('hundreds of reloads of the same content hold the same caches; the bytes held stay under the limit', async (t) => {
  const zip = await packed(t)
  const warm = await read(zip)
  await bundleReader.makeCodeCaches(warm, loadModuleCode(warm).uncached)
  const held = codeCacheCounts()
  for (let i = 0; i < 150; i++) {
    const bundle = await read(zip)
    const code = loadModuleCode(bundle)
    await bundleReader.makeCodeCaches(bundle, code.uncached)
  }
  assert.equal(codeCacheCounts().entries, held.entries)
  assert.equal(codeCacheCounts().bytes, held.bytes)

  // distinct contents: the least recently used are dropped to stay under the limit
  const limit = held.bytes * 3
  setCodeCacheLimit(limit)
  t.after(() => setCodeCacheLimit(32 * 1024 * 1024))
  for (let i = 0; i < 12; i++) {
    const bundle = await read(await packed(t, { 'node_modules/lib/extra.js': `module.exports = ${i}` }))
    await bundleReader.makeCodeCaches(bundle, loadModuleCode(bundle).uncached)
    assert.ok(codeCacheCounts().bytes <= limit, `${codeCacheCounts().bytes} <= ${limit}`)
  }
  setCodeCacheLimit(0)
  assert.equal(codeCacheCounts().entries, 0)
  assert.equal(codeCacheCounts().bytes, 0)
})

test('loading hundreds of versions of a changed file keeps none of them (no compile cache holds old sources)', async (t) => {
  const zip = await packed(t)
  const { stdout } = await run(
    process.execPath,
    ['--expose-gc', path.join(here, 'fixtures', 'distinct-code-heap.js'), zip, '200'],
    { timeout: 60_000 },
  )
  const { heapBefore, heapAfter } = JSON.parse(stdout)
  // 200 versions of 200 KB: 40 MB if each were kept
  const growthMb = (heapAfter - heapBefore) / 1024 / 1024
  assert.ok(growthMb < 10, `heap grew ${growthMb.toFixed(1)} MB over 200 versions`)
})

test.after(() => bundleReader.close())

test("a running generation's compiled wrappers are called again by the next load of the same files; each load is its own instance; released, they are gone", async (t) => {
  const { holdFunctions, heldFunctionCount, heldFunctionStats } = await import(
    '../dist/loader/held-functions.js'
  )
  // a module with state of its own at the top level, and a sloppy-mode file that shows its wrapper
  const zip = await packed(t, {
    'node_modules/lib/counter.js': 'let n = 0\nexports.next = () => ++n\n',
    'node_modules/lib/wrapper.js': 'module.exports = arguments.callee\n',
    // CommonJS that calls import(): run through the transform, held as the transform made it
    'node_modules/lib/lazy.js': "exports.path = () => import('node:path')\n",
    'index.js': `${files['index.js']}\nmodule.exports.counter = require('lib/counter.js')\nmodule.exports.wrapper = require('lib/wrapper.js')\nmodule.exports.lazy = require('lib/lazy.js')`,
  })
  const first = await read(zip)
  // caches first, so that the next reads have keys (digests): what a host's second generation has
  await bundleReader.makeCodeCaches(first, loadModuleCode(first).uncached)
  const heldBefore = heldFunctionCount()
  const one = loadModuleCode(await read(zip))
  assert.equal(one.functions.size, 5, 'every script loaded, by its key')
  const release = holdFunctions(one.functions)
  assert.equal(heldFunctionCount(), heldBefore + 5)

  const reusedBefore = heldFunctionStats.reused
  const usedBefore = codeCacheStats.used
  const two = loadModuleCode(await read(zip))
  assert.equal(heldFunctionStats.reused - reusedBefore, 5, 'no script compiled or transformed again')
  assert.equal(codeCacheStats.used, usedBefore, 'nor deserialized from its cache')
  assert.equal(two.exports.wrapper, one.exports.wrapper, 'the same wrapper function')
  // ...called anew: its own module instance and top-level state
  assert.notEqual(two.exports.counter, one.exports.counter)
  assert.equal(one.exports.counter.next(), 1)
  assert.equal(one.exports.counter.next(), 2)
  assert.equal(two.exports.counter.next(), 1)
  assert.equal(two.exports.value, 6)
  assert.notEqual(two.exports.lazy, one.exports.lazy)
  assert.equal(typeof (await two.exports.lazy.path()).join, 'function')

  // changed content in another bundle file (another name): nothing of the held wrappers applies
  const changedZip = await packed(t, {
    'node_modules/lib/counter.js': 'let n = 10\nexports.next = () => ++n\n',
    'node_modules/lib/wrapper.js': 'module.exports = arguments.callee\n',
    'index.js': `${files['index.js']}\nmodule.exports.counter = require('lib/counter.js')\nmodule.exports.wrapper = require('lib/wrapper.js')`,
  })
  const elsewhere = loadModuleCode(await read(changedZip))
  assert.notEqual(elsewhere.exports.wrapper, one.exports.wrapper)
  assert.equal(elsewhere.exports.counter.next(), 11)

  release()
  release()
  assert.equal(heldFunctionCount(), heldBefore, 'released once, whatever the calls')
  const three = loadModuleCode(await read(zip))
  assert.notEqual(three.exports.wrapper, one.exports.wrapper, 'compiled (from its cache) again')
})

test("a host reloading unchanged content calls the running generation's wrappers again; every generation has its own state", async (t) => {
  const { startHost, request } = await import('./helpers.js')
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\n')
  const dir = await moduleSource(root, 'm', {
    files: {
      ...files,
      'index.js': `const lib = require('lib')
let hits = 0
module.exports = { register (app, ctx) { app.get('/', async () => ({ generation: ctx.generation, hits: ++hits, sum: lib.sum([1, 2]) })) } }`,
    },
  })
  await packWithNyala(dir, path.join(root, 'modules', 'm.zip'))
  const host = await startHost(t, root, ['--log-format', 'json'])
  for (let i = 0; i < 3; i++) {
    const res = await request(host.admin('/modules/m/reload?force=true'), { method: 'POST' })
    assert.equal(res.status, 200, res.text)
    assert.equal(res.body.result, 'reloaded')
  }
  const started = host.logs().filter((r) => /^module m \S+ started \(generation \d+\)$/.test(r.msg ?? ''))
  assert.deepEqual(
    started.map((r) => r.generation),
    [1, 2, 3, 4],
  )
  // each generation started while the one before ran, from the same bytes: its 2 scripts were not
  // compiled at all, from the first reload after start-up on (start-up keys what it compiles too)
  assert.deepEqual(
    started.map((r) => r.codeCache.reused),
    [0, 2, 4, 6],
  )
  const answer = await request(host.url('/m/'))
  assert.deepEqual(answer.body, { generation: 4, hits: 1, sum: 3 }, 'a fresh module instance')
})
