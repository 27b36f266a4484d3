import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { promisify } from 'node:util'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { FileCache } from '../dist/loader/file-cache.js'
import {
  evaluationPlan,
  loadModuleCode,
  loadModuleCodeInSlices,
  precompile,
} from '../dist/loader/load-module.js'
import { moduleEntryOf } from '../dist/loader/module-entry.js'
import { compiledAs, entryAt, moduleLocation, placeBundle } from '../dist/loader/module-location.js'
import { makeRoot, moduleSource, packWithNyala, packWithZip, projectRoot, writeFiles } from './helpers.js'

const run = promisify(execFile)

/** `pack`: packWithZip for code `nyala pack` refuses (a syntax error), which the loader must refuse itself. */
async function bundleOf(t, files, fields = {}, pack = packWithNyala) {
  const root = await makeRoot(t)
  const dir = await moduleSource(root, 'm', { fields, files })
  return openBundle(await pack(dir, path.join(root, 'modules', 'm.zip')))
}

test('require resolves bundle files, json, directories, built-ins, bundle node_modules and host packages', async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `
      const a = require('./lib/a')
      const data = require('./data.json')
      const dir = require('./lib/dir')
      const path = require('node:path')
      const os = require('os')
      const pad = require('leftpad')
      const fastify = require('fastify')
      module.exports = { register () {}, seen: { a, data, dir, path: typeof path.join, os: typeof os.cpus, pad: pad('x'), fastify: typeof fastify } }`,
    'lib/a.js': `exports.value = require('../data.json').n + 1`,
    'lib/dir/index.js': `module.exports = 'from index'`,
    'data.json': '{ "n": 41 }',
    'node_modules/leftpad/package.json': '{ "main": "main.js" }',
    'node_modules/leftpad/main.js': `module.exports = (s) => '  ' + s`,
  })
  const { exports } = loadModuleCode(bundle)
  assert.deepEqual(exports.seen, {
    a: { value: 42 },
    data: { n: 41 },
    dir: 'from index',
    path: 'function',
    os: 'function',
    pad: '  x',
    fastify: 'function',
  })
})

test('each load gets its own module cache, so two generations share no state', async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `const s = require('./state'); s.count++; module.exports = { register () {}, state: s }`,
    'state.js': `module.exports = { count: 0 }`,
  })
  const one = loadModuleCode(bundle).exports
  const two = loadModuleCode(bundle).exports
  assert.equal(one.state.count, 1)
  assert.equal(two.state.count, 1)
  assert.notEqual(one.state, two.state)
})

test('cyclic requires see the partial exports, as in Node', async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `exports.register = () => {}; exports.b = require('./b')`,
    'b.js': `const index = require('./index'); module.exports = { sawRegister: typeof index.register }`,
  })
  assert.equal(loadModuleCode(bundle).exports.b.sawRegister, 'function')
})

test('a syntax error names the bundle, the file and the line', async (t) => {
  const bundle = await bundleOf(
    t,
    { 'index.js': `'use strict'\nconst ok = 1\nconst broken = ;\nmodule.exports = {}` },
    {},
    packWithZip,
  )
  assert.throws(
    () => loadModuleCode(bundle),
    (err) => {
      assert.equal(err.code, 'NYALA_ERR_MODULE_SYNTAX')
      assert.match(err.message, /index\.js:3/)
      assert.ok(err.message.includes(bundle.file))
      return true
    },
  )
})

test('a syntax error in a required file names that file', async (t) => {
  const bundle = await bundleOf(
    t,
    { 'index.js': `require('./lib/bad')`, 'lib/bad.js': `\n\nfunction (\n` },
    {},
    packWithZip,
  )
  assert.throws(() => loadModuleCode(bundle), /lib\/bad\.js:3/)
})

test("code probing for an optional dependency sees Node's codes, and goes on", async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `
let native = null
try { native = require('pg-native') } catch (e) { if (e.code !== 'MODULE_NOT_FOUND') throw e }
const codes = {}
try { require('./missing') } catch (e) { codes.relative = e.code }
try { require('hidden/not-exported') } catch (e) { codes.notExported = e.code }
try { require.resolve('also-missing') } catch (e) { codes.resolve = e.code }
try { require('#nope') } catch (e) { codes.importNotDefined = e.code }
try { require('#') } catch (e) { codes.badSpecifier = e.code }
try { require('hidden/bad') } catch (e) { codes.badTarget = e.code }
// the target's file is missing (a path that says "exports"): not found, as in Node
try { require('hidden/gone') } catch (e) { codes.targetMissing = e.code }
// a #specifier in a package with no "imports" at all: require looks for a package of that name
codes.noImportsField = require('hidden/probe')
module.exports = {
  register () {},
  native,
  codes,
  imported: () => import('no-such-esm-package').then(() => 'found', (e) => e.code),
}
`,
    // nyala pack packs the production dependencies package.json names
    'package.json':
      '{ "name": "app", "imports": { "#x": "./index.js" }, "dependencies": { "hidden": "1.0.0" } }',
    'node_modules/hidden/package.json':
      '{ "name": "hidden", "version": "1.0.0", "exports": { ".": "./index.js", "./bad": "../x.js", "./gone": "./exports/gone.js", "./probe": "./probe.js" } }',
    'node_modules/hidden/probe.js': "try { require('#nothing') } catch (e) { module.exports = e.code }",
    'node_modules/hidden/index.js': 'module.exports = 1',
  })
  const { exports } = loadModuleCode(bundle)
  assert.equal(exports.native, null)
  assert.deepEqual(exports.codes, {
    relative: 'MODULE_NOT_FOUND',
    notExported: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    resolve: 'MODULE_NOT_FOUND',
    importNotDefined: 'ERR_PACKAGE_IMPORT_NOT_DEFINED',
    badSpecifier: 'ERR_INVALID_MODULE_SPECIFIER',
    badTarget: 'ERR_INVALID_PACKAGE_TARGET',
    targetMissing: 'MODULE_NOT_FOUND',
    noImportsField: 'MODULE_NOT_FOUND',
  })
  assert.equal(await exports.imported(), 'ERR_MODULE_NOT_FOUND')
})

test('require of something that does not exist, or outside the bundle, is refused', async (t) => {
  for (const request of ['./missing', '../../etc/passwd', '/etc/passwd', 'no-such-package-anywhere']) {
    const bundle = await bundleOf(t, { 'index.js': `require(${JSON.stringify(request)})` })
    assert.throws(
      () => loadModuleCode(bundle),
      (err) => err.code === 'NYALA_ERR_MODULE_REQUIRE' && err.message.includes(request),
      request,
    )
  }
})

test('code that throws while loading is NYALA_ERR_MODULE_EVAL', async (t) => {
  const bundle = await bundleOf(t, { 'index.js': `throw new Error('boom at load')` })
  assert.throws(
    () => loadModuleCode(bundle),
    (err) => err.code === 'NYALA_ERR_MODULE_EVAL' && /boom at load/.test(err.message),
  )
})

test('register is found as module.exports, .register or .default, and runs with its object as this', () => {
  function fn() {
    return this
  }
  const asFn = moduleEntryOf(fn, 'b', 'index.js')
  assert.equal(asFn.register(), fn)
  const obj = { register: fn }
  assert.equal(moduleEntryOf(obj, 'b', 'index.js').register(), obj)
  const withDefault = { default: fn }
  assert.equal(moduleEntryOf(withDefault, 'b', 'index.js').register(), withDefault)
  const inner = {
    register: fn,
    stop() {
      return ['stop', this]
    },
    handoff() {
      return ['handoff', this]
    },
  }
  const entry = moduleEntryOf({ default: inner }, 'b', 'index.js')
  assert.deepEqual(entry.stop(), ['stop', inner])
  assert.deepEqual(entry.handoff(), ['handoff', inner])
  assert.equal(moduleEntryOf({ register: fn }, 'b', 'index.js').handoff, undefined)
  assert.throws(() => moduleEntryOf({ start: fn }, 'b', 'index.js'), { code: 'NYALA_ERR_MODULE_NO_REGISTER' })
})

test('300 generations of a module are garbage-collected once stopped', async (t) => {
  const root = await makeRoot(t)
  // each generation holds 1 MB of its own and a host-tracked interval: a leak would show as ~300 MB
  const dir = await moduleSource(root, 'heavy', {
    files: {
      'index.js': `
        const util = require('./util')
        module.exports = {
          async register (app, ctx) {
            const ballast = new Array(128 * 1024).fill(ctx.generation)
            ctx.setInterval(() => ballast.length, 60_000)
            ctx.onStop(() => ballast.length)
            ctx.provide({ ballast, util })
            app.get('/', async () => ({ n: ballast.length }))
          },
          stop (ctx) { return { carried: ctx.generation } }
        }`,
      'util.js': `module.exports = { big: new Array(10000).fill('x').join('') }`,
    },
  })
  const bundleFile = await packWithNyala(dir, path.join(root, 'modules', 'heavy.zip'))
  const probe = path.join(
    import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname),
    'heap-probe.js',
  )
  const { stdout } = await run(process.execPath, ['--expose-gc', probe, bundleFile, '300'], {
    timeout: 120_000,
  })
  const result = JSON.parse(stdout.trim().split('\n').pop())
  // everything but possibly the last generation must be gone
  assert.ok(result.collected >= result.created - 2, `collected ${result.collected} of ${result.created}`)
  const growthMb = (result.heapAfter - result.heapBefore) / 1024 / 1024
  assert.ok(growthMb < 32, `heap grew ${growthMb.toFixed(1)} MB over 300 generations`)
})

test('writeFiles helper is usable for exploded bundles too', async (t) => {
  const root = await makeRoot(t)
  const dir = await writeFiles(path.join(root, 'modules', 'plain'), {
    'module.properties': 'version=2.0.0\n',
    'index.js': 'module.exports = () => {}',
  })
  const bundle = await openBundle(dir)
  assert.equal(bundle.kind, 'directory')
  assert.equal(bundle.name, 'plain')
})

test('files compiled ahead (precompile) run as loadModuleCode would; one that does not compile fails where it is required', async (t) => {
  const bundle = await bundleOf(
    t,
    {
      'index.js': `
      const a = require('./lib/a')
      let bad
      try { require('./lib/bad') } catch (err) { bad = err.code }
      module.exports = { register () {}, seen: { a, bad, self: __filename.endsWith('/index.js') } }`,
      'lib/a.js': `exports.n = 1 + 1`,
      'lib/bad.js': `const = 1`,
    },
    {},
    packWithZip,
  )
  const plain = loadModuleCode(bundle)
  // the previous generation's load order is the hint; an entry that is not in the bundle is skipped
  const compiled = await precompile(bundle, [...plain.loaded, 'lib/bad.js', 'lib/gone.js'])
  assert.deepEqual([...compiled.keys()].sort(), ['index.js', 'lib/a.js'])
  const ahead = loadModuleCode(bundle, compiled)
  assert.deepEqual(ahead.exports.seen, { a: { n: 2 }, bad: 'NYALA_ERR_MODULE_SYNTAX', self: true })
  assert.deepEqual(ahead.exports.seen, plain.exports.seen)
  assert.deepEqual(ahead.loaded, plain.loaded)
})

test('packages run ahead in slices (a reload) give the exports a plain load gives; cycles and own files keep their order', async (t) => {
  // every file appends its name to a log the main file exports, so the order each ran in shows
  const logged = (name, body = '') => `globalThis.__order.push('${name}'); ${body}`
  const bundle = await bundleOf(t, {
    'index.js': `
      ${logged('index')}
      const own = require('./lib/own')
      const a = require('a')
      const cyc = require('cyc')
      module.exports = { register () {}, seen: { own, a, cyc, order: globalThis.__order } }`,
    'lib/own.js': logged('own', `module.exports = 'own'`),
    'node_modules/a/package.json': '{ "main": "index.js" }',
    'node_modules/a/index.js': logged('a', `module.exports = { b: require('./b'), c: require('c') }`),
    'node_modules/a/b.js': logged('a/b', `module.exports = 'b'`),
    'node_modules/c/index.js': logged('c', `module.exports = 'c'`),
    // a require cycle: x starts first, so y sees x half-built
    'node_modules/cyc/index.js': logged('cyc', `module.exports = require('./x')`),
    'node_modules/cyc/x.js': logged('x', `exports.early = 1; exports.y = require('./y'); exports.late = 2`),
    'node_modules/cyc/y.js': logged('y', `exports.sawX = Object.keys(require('./x')).join(',')`),
  })
  globalThis.__order = []
  const plain = loadModuleCode(bundle)
  const first = plain.exports.seen
  assert.deepEqual(first.order, ['index', 'own', 'a', 'a/b', 'c', 'cyc', 'x', 'y'])
  assert.equal(first.cyc.y.sawX, 'early')

  const plan = evaluationPlan('index.js', plain.requires)
  // dependencies before what requires them; no own file, no file of the cycle (its parent,
  // which enters it where a plain load does, is planned), not the main file
  assert.deepEqual(plan, [
    'node_modules/a/b.js',
    'node_modules/c/index.js',
    'node_modules/a/index.js',
    'node_modules/cyc/index.js',
  ])

  globalThis.__order = []
  const ahead = await loadModuleCodeInSlices(bundle, await precompile(bundle, plain.loaded), plan, 0)
  const second = ahead.exports.seen
  assert.deepEqual({ ...second, order: undefined }, { ...first, order: undefined })
  // each file ran once; the packages first, the cycle still entered at x
  assert.deepEqual(second.order, ['a/b', 'c', 'a', 'cyc', 'x', 'y', 'index', 'own'])
  assert.equal(second.cyc.y.sawX, 'early')
  delete globalThis.__order
})

test('module.parent, module.children, module.require and require.cache as Node gives them to code a host loads; require.main is not the module', async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `
const counter = require('./counter')
const first = counter.n
// import-fresh's way (cosmiconfig uses it): take the file out of the cache, require it again
const file = require.resolve('./counter')
const cachedBefore = file in require.cache && require.cache[file] === module.children[0]
delete require.cache[file]
const fresh = require('./counter')
// a mock put in by hand is what the next require gets (mock-require's way)
require.cache[require.resolve('./lib/mock-me')] = { exports: 'mocked', loaded: true }
// the old "am I run on my own?" tests: never true inside the host
let standalone = false
if (!module.parent) standalone = true
module.exports = {
  register () {},
  standalone,
  mainIsModule: require.main === module,
  first,
  fresh: fresh.n,
  sameAfter: require('./counter') === fresh,
  cachedBefore,
  cached: Object.keys(require.cache).map((f) => f.slice(f.lastIndexOf('/') + 1)).sort(),
  freshParent: fresh.parentId,
  viaModuleRequire: module.require('./lib/x').x,
  // ids are file names, as in Node: decache-style code deletes require.cache[child.id]
  idIsFile: module.children.every((c) => c.id === c.filename && c.id in require.cache),
  // a module already loaded is a child of each module that requires it
  // state.js was loaded by counter.js: requiring it here makes it this module's child too
  sharedIsChild: (require('./state'), module.children.some((c) => c.id.endsWith('/state.js'))),
  frozen: (() => { try { Object.freeze(require.cache); return 'frozen' } catch (e) { return e.constructor.name } })(),
  keysAfterFreeze: Object.keys(require.cache).length > 0,
  mocked: require('./lib/mock-me'),
  // setting an entry to undefined runs the file again too, as in Node
  rerun: ((require.cache[require.resolve('./counter')] = undefined), require('./counter').n),
  definedFixed: (() => {
    try {
      Object.defineProperty(require.cache, require.resolve('./state'), { value: {}, configurable: false })
      return 'defined'
    } catch (e) {
      return e.constructor.name
    }
  })(),
}
`,
    'state.js': 'module.exports = { n: 0 }',
    'counter.js': `const state = require('./state')
state.n++
exports.n = state.n
exports.parentId = module.parent.id.slice(module.parent.id.lastIndexOf('/') + 1)
`,
    'lib/x.js': 'exports.x = 7',
    'lib/mock-me.js': 'module.exports = "the real one"',
  })
  const { exports, loaded } = loadModuleCode(bundle)
  // counter.js ran twice, and is recorded once (a reload precompiles what this list names)
  assert.deepEqual(
    loaded.filter((e) => e === 'counter.js'),
    ['counter.js'],
  )
  assert.deepEqual(
    { ...exports, register: undefined },
    {
      register: undefined,
      standalone: false,
      mainIsModule: false,
      first: 1,
      fresh: 2,
      sameAfter: true,
      cachedBefore: true,
      cached: ['counter.js', 'index.js', 'mock-me.js', 'state.js'],
      freshParent: 'index.js',
      viaModuleRequire: 7,
      idIsFile: true,
      sharedIsChild: true,
      frozen: 'TypeError',
      keysAfterFreeze: true,
      mocked: 'mocked',
      rerun: 3,
      definedFixed: 'TypeError',
    },
  )
})

test("a failed second placement of a bundle leaves the first generation's files where its code finds them", async (t) => {
  const bundle = await bundleOf(t, { 'lib/x.js': 'module.exports = 1\n' })
  const cacheDir = path.join(path.dirname(path.dirname(bundle.file)), 'run', 'cache')
  const cache = new FileCache(cacheDir)
  const first = await cache.acquire(bundle)
  const placed = moduleLocation(bundle, 'lib/x.js').filename
  assert.equal(placed, path.join(first.dir, 'lib', 'x.js'))
  // the directory gone and the cache made unwritable (a file where the directory was: also for root)
  await run('chmod', ['-R', 'u+w', first.dir])
  await run('rm', ['-rf', first.dir])
  await writeFile(first.dir, 'not a directory')
  await assert.rejects(cache.acquire(bundle), { code: 'NYALA_ERR_CACHE_WRITE' })
  assert.equal(moduleLocation(bundle, 'lib/x.js').filename, placed)
  assert.equal(entryAt(bundle, placed), 'lib/x.js')
  first.release()
})

test('in a bundle holding a native addon, the files bindings looks at are compiled under their files on disk, the rest under the bundle', async (t) => {
  const addon = await readFile(path.join(projectRoot, 'native', 'build', 'Release', 'nyala_fdpass.node'))
  const files = {
    'index.js': 'module.exports = 1\n',
    'node_modules/sq/lib/db.js': "module.exports = require('bindings')('sq')\n",
    'node_modules/sq/build/Release/sq.node': addon,
    'node_modules/@s/q/lib/index.js': 'module.exports = 1\n',
    'node_modules/@s/q/prebuilds/linux-x64/q.node': addon,
    'node_modules/@s/other/index.js': 'module.exports = 1\n',
    'node_modules/bindings/bindings.js': 'exports.f = (s) => s.getFileName()\n',
    'node_modules/plain/index.js': 'module.exports = 1\n',
    'node_modules/plain/node_modules/sq/index.js': 'module.exports = 1\n',
    // a folder whose name only ends with node_modules is the bundle's own
    'vendor_node_modules/lib/v.js': 'module.exports = 1\n',
  }
  const onDisk = async (bundleFiles) => {
    const bundle = await bundleOf(t, bundleFiles, {}, packWithZip)
    placeBundle(bundle, '/cache/dir')
    const disk = []
    for (const entry of Object.keys(bundleFiles)) {
      if (entry.endsWith('.node')) continue
      const name = compiledAs(bundle, entry)
      if (name.shown === undefined) {
        assert.equal(name.file, `${bundle.file}/${entry}`)
        continue
      }
      assert.equal(name.file, `/cache/dir/${entry}`)
      assert.equal(name.shown, `${bundle.file}/${entry}`)
      disk.push(entry)
    }
    return disk
  }
  assert.deepEqual(await onDisk(files), [
    'node_modules/sq/lib/db.js',
    'node_modules/@s/q/lib/index.js',
    'node_modules/bindings/bindings.js',
  ])
  // the bundle's own addon: its own files, also those under vendor_node_modules/
  assert.deepEqual(await onDisk({ ...files, 'vendor_node_modules/build/Release/v.node': addon }), [
    'index.js',
    'node_modules/sq/lib/db.js',
    'node_modules/@s/q/lib/index.js',
    'node_modules/bindings/bindings.js',
    'vendor_node_modules/lib/v.js',
  ])
  // no addon at all: every file under the bundle's name, whatever it reads
  const {
    'node_modules/sq/build/Release/sq.node': _a,
    'node_modules/@s/q/prebuilds/linux-x64/q.node': _b,
    ...none
  } = files
  assert.deepEqual(await onDisk(none), [])
})
