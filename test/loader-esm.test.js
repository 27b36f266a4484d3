// ES modules and TypeScript from memory (issue 15 part 2): module sources as ES modules and
// TypeScript, import(), import.meta, ESM-only packages by import and by require, exports-only and
// conditional packages, top-level await refused by name, stacks naming the .ts line, and a reload
// of unchanged files that transforms nothing again. Real zips made by `nyala pack`, the real CLI.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cp } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { checkSyntax, loadModuleCode } from '../dist/loader/load-module.js'
import { moduleEntryOf } from '../dist/loader/module-entry.js'
import {
  makeRoot,
  manifest,
  modulesOf,
  packWithNyala,
  packWithZip,
  projectRoot,
  request,
  startHost,
  writeFiles,
} from './helpers.js'

const run = promisify(execFile)

// real registry packages, installed as the project's devDependencies, with their dependencies
const packages = [
  'chalk',
  'nanoid',
  'uuid',
  'dunder-proto',
  'math-intrinsics',
  'call-bind-apply-helpers',
  'es-errors',
  'function-bind',
  'gopd',
]

async function withPackages(dir) {
  for (const name of packages) {
    await cp(path.join(projectRoot, 'node_modules', name), path.join(dir, 'node_modules', name), {
      recursive: true,
    })
  }
  return dir
}

/** A module source directory with exactly these files and module.properties. */
const moduleDir = (root, name, fields, files) =>
  writeFiles(path.join(root, 'src', name), { 'module.properties': manifest(fields), ...files })

/** `pack`: packWithZip for code `nyala pack` refuses (a syntax error), which the loader must refuse itself. */
async function bundleOf(t, files, fields = {}, { npm = false, pack = packWithNyala } = {}) {
  const root = await makeRoot(t)
  const dir = await moduleDir(root, 'm', fields, files)
  if (npm) await withPackages(dir)
  return openBundle(await pack(dir, path.join(root, 'modules', 'm.zip')))
}

const esmModule = {
  // nyala pack takes the production dependencies from node_modules/
  'package.json': JSON.stringify({
    name: 'm',
    type: 'module',
    dependencies: { chalk: '*', nanoid: '*', uuid: '*', 'dunder-proto': '*', 'math-intrinsics': '*' },
  }),
  'index.mjs': `
import chalk from 'chalk'
import { nanoid } from 'nanoid'
import getProto from 'dunder-proto/get'
import max from 'math-intrinsics/max'
import { v4, validate } from 'uuid'
import fromCjs from './lib/from-cjs.cjs'
import data from './data.json' with { type: 'json' }

export default {
  name: 'esm',
  async register (app, ctx) {
    const dyn = await import('./lib/dyn.js')
    const nano = await import('nanoid')
    return {
      self: this.name,
      chalk: typeof chalk.red,
      nanoid: nanoid().length,
      nanoDynamic: nano.nanoid(5).length,
      proto: getProto([]) === Array.prototype,
      max: max(3, 4),
      uuid: validate(v4()),
      fromCjs,
      data: data.n,
      dyn: dyn.default,
      dynNamed: dyn.named,
      meta: { url: import.meta.url, filename: import.meta.filename, dirname: import.meta.dirname },
      resolved: import.meta.resolve('./lib/dyn.js'),
    }
  },
}
`,
  'lib/from-cjs.cjs': `
const chalk = require('chalk')
const { nanoid } = require('nanoid')
const uuid = require('uuid')
module.exports = { chalk: typeof chalk.default.red, nanoid: nanoid().length, uuid: uuid.validate(uuid.v4()), dirname: __dirname }
`,
  'lib/dyn.js': `export default 'dynamic'\nexport const named = import.meta.filename.endsWith('lib/dyn.js')\n`,
  'data.json': '{ "n": 7 }',
}

test('an ES module source runs from memory: ESM-only, exports-only and conditional packages, import(), import.meta', async (t) => {
  const bundle = await bundleOf(t, esmModule, { main: 'index.mjs' }, { npm: true })
  checkSyntax(bundle)
  const code = loadModuleCode(bundle)
  const entry = moduleEntryOf(code.exports, bundle.file, 'index.mjs')
  const seen = await entry.register({}, {})
  const filename = `${bundle.file}/index.mjs`
  assert.deepEqual(seen, {
    self: 'esm',
    chalk: 'function',
    nanoid: 21,
    nanoDynamic: 5,
    proto: true,
    max: 4,
    uuid: true,
    fromCjs: { chalk: 'function', nanoid: 21, uuid: true, dirname: `${bundle.file}/lib` },
    data: 7,
    dyn: 'dynamic',
    dynNamed: true,
    meta: { url: `file://${filename}`, filename, dirname: bundle.file },
    resolved: `file://${bundle.file}/lib/dyn.js`,
  })
  // uuid's conditional exports: the import gets its ES module build, the require its CommonJS one
  assert.ok(code.loaded.includes('node_modules/uuid/dist/esm/index.js'), code.loaded.join('\n'))
  assert.ok(code.loaded.includes('node_modules/uuid/dist/cjs/index.js'), code.loaded.join('\n'))
  // chalk 5's #imports, resolved inside the package
  assert.ok(code.loaded.includes('node_modules/chalk/source/vendor/ansi-styles/index.js'))
})

test('register is a named export, the default export, or its method, in .js, .ts, .mts and .cts', async (t) => {
  const cases = [
    // an ES module in a .js file with no package type: run as one, as Node's syntax detection does
    ['index.js', `export function register () { return 'named js' }`, 'named js'],
    [
      'index.ts',
      `export default function register (app: unknown): string { return 'default ts' }`,
      'default ts',
    ],
    [
      'index.mts',
      `const m = { register (): string { return 'method mts' } }\nexport default m`,
      'method mts',
    ],
    ['index.cts', `export = { register: (): string => 'export= cts' }`, 'export= cts'],
  ]
  for (const [main, source, expected] of cases) {
    const bundle = await bundleOf(t, { [main]: source }, { main })
    const entry = moduleEntryOf(loadModuleCode(bundle).exports, bundle.file, main)
    assert.equal(await entry.register({}, {}), expected, main)
  }
})

test('types are stripped by the nearest package.json type and tsconfig.json; .js imports find .ts files', async (t) => {
  const bundle = await bundleOf(
    t,
    {
      'package.json': JSON.stringify({ type: 'module' }),
      'tsconfig.json': '{ // comments are allowed\n "compilerOptions": { "experimentalDecorators": true } }',
      'index.ts': `
import { twice } from './lib/math.js'
import type { Shape } from './lib/types.js'
const seal = (target: unknown) => { (target as { sealed: boolean }).sealed = true }
@seal class Box {}
export function register (): { twice: number; sealed: boolean; strict: boolean; shape: Shape } {
  return { twice: twice(21), sealed: (Box as unknown as { sealed: boolean }).sealed, strict: this === undefined, shape: { sides: 3 } }
}
`,
      'lib/math.ts': 'export const twice = (n: number): number => n * 2',
      'lib/types.ts': 'export interface Shape { sides: number }',
    },
    { main: 'index.ts' },
  )
  const { exports } = loadModuleCode(bundle)
  assert.deepEqual(exports.register.call(undefined), {
    twice: 42,
    sealed: true,
    strict: true,
    shape: { sides: 3 },
  })
})

test('TypeScript in a CommonJS scope (no package type) imports defaults of TypeScript, CommonJS and export =', async (t) => {
  const bundle = await bundleOf(
    t,
    {
      'index.ts': `
import config from './config'
import { twice } from './lib/math'
import legacy from './legacy.js'
import assigned from './assigned'
import * as all from './config'
export function register (): unknown {
  return { port: config.port, twice: twice(2), legacy: legacy.name, assigned: assigned(), keys: Object.keys(all).sort() }
}
`,
      'config.ts': 'export default { port: 8080 }\nexport const extra = 1\n',
      'lib/math.ts': 'export const twice = (n: number): number => n * 2\n',
      'legacy.js': `module.exports = { name: 'legacy' }`,
      'assigned.ts': 'export = (): string => "assigned"\n',
    },
    { main: 'index.ts' },
  )
  assert.deepEqual(loadModuleCode(bundle).exports.register(), {
    port: 8080,
    twice: 4,
    legacy: 'legacy',
    assigned: 'assigned',
    keys: ['default', 'extra'],
  })
})

test("createRequire(import.meta.url) in an ES module gives the bundle's require", async (t) => {
  const bundle = await bundleOf(
    t,
    {
      'index.mjs': `
import { createRequire } from 'node:module'
import mod from 'module'
const require = createRequire(import.meta.url)
const fromDir = mod.createRequire(new URL('./lib/', import.meta.url))
export const register = () => ({
  conf: require('./conf.json').n,
  cjs: require('./lib/cjs.cjs'),
  sibling: fromDir('./cjs.cjs'),
  path: require.resolve('./lib/cjs.cjs'),
  builtins: Array.isArray(mod.builtinModules),
})
`,
      'conf.json': '{ "n": 3 }',
      'lib/cjs.cjs': `module.exports = 'cjs'`,
    },
    { main: 'index.mjs' },
  )
  const { exports, loaded } = loadModuleCode(bundle)
  assert.deepEqual(exports.register(), {
    conf: 3,
    cjs: 'cjs',
    sibling: 'cjs',
    path: `${bundle.file}/lib/cjs.cjs`,
    builtins: true,
  })
  assert.ok(loaded.includes('lib/cjs.cjs'))
})

test("an ES module or TypeScript file may declare its own __dirname and __filename; free uses still get the bundle's", async (t) => {
  const bundle = await bundleOf(
    t,
    {
      'index.mjs': `
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { own } from './lib/own.ts'
// the ES module idiom: Node defines none of these names in an ES module
const __filename = fileURLToPath(import.meta.url)
const __dirname = path.dirname(__filename)
export const register = () => ({ dirname: __dirname, filename: __filename, own })
`,
      'lib/own.ts': `
import path from 'node:path'
import { fileURLToPath } from 'node:url'
const __dirname: string = path.dirname(fileURLToPath(import.meta.url))
export const own = { dirname: __dirname }
`,
    },
    { main: 'index.mjs' },
  )
  const { exports } = loadModuleCode(bundle)
  const got = exports.register()
  assert.equal(got.filename, `${bundle.file}/index.mjs`)
  assert.equal(got.dirname, bundle.file)
  assert.equal(got.own.dirname, `${bundle.file}/lib`)
  const freeBundle = await bundleOf(
    t,
    {
      'index.mjs': `import { free } from './lib/free.mjs'\nexport const register = () => free`,
      'lib/free.mjs': `export const free = { dirname: __dirname, filename: __filename }`,
    },
    { main: 'index.mjs' },
  )
  const free = loadModuleCode(freeBundle).exports.register()
  assert.match(free.filename, /lib\/free\.mjs$/)
  assert.match(free.dirname, /lib$/)
})

test('require of a directory with a trailing slash, and JSON with a byte order mark, load as in Node', async (t) => {
  const bundle = await bundleOf(t, {
    'index.js': `module.exports = { register () {}, here: require('./lib/'), up: require('./lib/deep/x.js'), data: require('./data.json') }`,
    'lib/index.js': `module.exports = 'lib'`,
    'lib/deep/x.js': `module.exports = require('../')`,
    'data.json': '\ufeff{ "n": 1 }',
  })
  const { exports } = loadModuleCode(bundle)
  assert.equal(exports.here, 'lib')
  assert.equal(exports.up, 'lib', "require('../') from lib/deep is lib/index.js")
  assert.deepEqual(exports.data, { n: 1 })
})

test('top-level await is refused with a coded error naming file:line, own file or package', async (t) => {
  const own = await bundleOf(
    t,
    {
      'index.mjs': `import './lib/wait.mjs'\nexport function register () {}`,
      'lib/wait.mjs': `const a = 1\n\nawait 0\n`,
    },
    { main: 'index.mjs' },
    { pack: packWithZip },
  )
  for (const attempt of [() => checkSyntax(own), () => loadModuleCode(own)]) {
    assert.throws(attempt, (err) => {
      assert.equal(err.code, 'NYALA_ERR_MODULE_TOP_LEVEL_AWAIT')
      assert.equal(err.details.location, 'lib/wait.mjs:3')
      assert.match(err.message, /lib\/wait\.mjs:3 uses top-level await/)
      return true
    })
  }
  const dep = await bundleOf(
    t,
    {
      'index.js': `require('waits'); module.exports = { register () {} }`,
      'node_modules/waits/package.json': JSON.stringify({
        name: 'waits',
        type: 'module',
        exports: './main.js',
      }),
      'node_modules/waits/main.js': `export const x = await Promise.resolve(1)\n`,
    },
    { main: 'index.js' },
  )
  checkSyntax(dep) // packages are checked where they are loaded
  assert.throws(
    () => loadModuleCode(dep),
    (err) =>
      err.code === 'NYALA_ERR_MODULE_TOP_LEVEL_AWAIT' &&
      err.details.location === 'node_modules/waits/main.js:1',
  )
})

test('a TypeScript syntax error names the .ts file and line', async (t) => {
  const bundle = await bundleOf(
    t,
    { 'index.ts': `const a: number = 1\nconst b = (a: ) => a\n` },
    { main: 'index.ts' },
    { pack: packWithZip },
  )
  assert.throws(
    () => checkSyntax(bundle),
    (err) => err.code === 'NYALA_ERR_MODULE_SYNTAX' && err.details.location === 'index.ts:2',
  )
})

// the TypeScript module served by the real host: its own lines in stacks, import() of a bundle file
const tsFiles = (tag) => ({
  'package.json': JSON.stringify({ name: 'ts', type: 'module' }),
  'index.ts': `
import { fail } from './lib/fail.js'

interface Answer { tag: string; stack?: string; lazy?: string }

export async function register (app: any): Promise<void> {
  app.get('/', async (): Promise<Answer> => ({ tag: ${JSON.stringify(tag)} }))
  app.get('/boom', async (): Promise<Answer> => {
    try {
      fail('from a route')
    } catch (err) {
      return { tag: 'boom', stack: (err as Error).stack }
    }
    return { tag: 'unreachable' }
  })
  app.get('/lazy', async (): Promise<Answer> => ({ tag: 'lazy', lazy: (await import('./lib/lazy.js')).lazy }))
}
`,
  'lib/fail.ts': `type Why = string

// the throw is on line 5
export function fail (why: Why): never {
  throw new Error(\`failed: \${why}\`)
}
`,
  'lib/lazy.ts': `export const lazy: string = 'loaded by import()'\n`,
})

async function packTs(root, tag, extra = {}) {
  const dir = await moduleDir(
    root,
    `ts-${tag}`,
    { main: 'index.ts', prefix: '/ts' },
    { ...tsFiles('same'), ...extra },
  )
  return packWithNyala(dir, path.join(root, 'src', `ts-${tag}.zip`))
}

test('a TypeScript module served by the host: stacks name the .ts line, import() works, an unchanged reload transforms nothing', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nauto.reload.modules=true\n')
  const first = await packTs(root, 'a')
  await cp(first, path.join(modulesOf(root), 'ts.zip'))
  const host = await startHost(t, root)

  const boom = (await request(host.url('/ts/boom'))).body
  assert.equal(boom.tag, 'boom')
  assert.match(boom.stack, /^Error: failed: from a route\n/)
  // the frame of fail() names the TypeScript file and the line of the throw
  assert.match(boom.stack, /\n {4}at fail \(.*\/ts\.zip\/lib\/fail\.ts:5:9\)/)
  assert.match(boom.stack, /\/ts\.zip\/index\.ts:10:\d+\)/)
  assert.equal((await request(host.url('/ts/lazy'))).body.lazy, 'loaded by import()')

  const started = (generation) =>
    host.logs().find((r) => r.module === 'ts' && r.generation === generation && /started/.test(r.msg))
  const waitStarted = async (generation) => {
    for (let i = 0; i < 600 && !started(generation); i++) await sleep(50)
    const rec = started(generation)
    assert.ok(rec, `generation ${generation} started\n${host.stdout()}`)
    return rec
  }
  const one = await waitStarted(1)
  assert.ok(one.transforms.made >= 3, JSON.stringify(one.transforms))

  // a new bundle whose TypeScript is unchanged (only a text file differs): nothing transformed again
  await cp(await packTs(root, 'b', { 'note.txt': 'changed' }), path.join(modulesOf(root), 'ts.zip'))
  const two = await waitStarted(2)
  assert.equal(two.transforms.made, one.transforms.made, JSON.stringify({ one, two }))
  assert.ok(two.transforms.cached > one.transforms.cached)

  // a changed TypeScript file is transformed (once: the reader's syntax check does it for the load)
  await cp(
    await packTs(root, 'c', { 'lib/lazy.ts': `export const lazy: string = 'changed'\n` }),
    path.join(modulesOf(root), 'ts.zip'),
  )
  const three = await waitStarted(3)
  assert.equal(three.transforms.made, one.transforms.made + 1, JSON.stringify({ one, three }))
  assert.equal((await request(host.url('/ts/lazy'))).body.lazy, 'changed')
})

test('300 generations of a TypeScript module importing an ESM-only package are garbage-collected', async (t) => {
  const root = await makeRoot(t)
  // each generation holds 1 MB of its own: a leak would show as ~300 MB
  const dir = await moduleDir(
    root,
    'heavy',
    { main: 'index.ts' },
    {
      'package.json': JSON.stringify({ type: 'module', dependencies: { chalk: '*' } }),
      'index.ts': `
import chalk from 'chalk'
import { util } from './util.js'
export async function register (app: any, ctx: any): Promise<void> {
  const ballast: number[] = new Array(128 * 1024).fill(ctx.generation)
  const lazy = await import('./lazy.js')
  ctx.provide({ ballast, util, red: chalk.red, lazy })
  try { throw new Error('read a mapped stack') } catch (err) { ballast.push((err as Error).stack!.length) }
}
`,
      'util.ts': `export const util: string = new Array(10000).fill('x').join('')`,
      'lazy.ts': `export default (n: number): number => n + 1`,
    },
  )
  await cp(path.join(projectRoot, 'node_modules', 'chalk'), path.join(dir, 'node_modules', 'chalk'), {
    recursive: true,
  })
  const bundleFile = await packWithNyala(dir, path.join(root, 'modules', 'heavy.zip'))
  assert.ok((await openBundle(bundleFile)).files.has('node_modules/chalk/source/index.js'), 'chalk is packed')
  const { stdout } = await run(
    process.execPath,
    ['--expose-gc', path.join(import.meta.dirname, 'heap-probe.js'), bundleFile, '300'],
    { timeout: 180_000 },
  )
  const result = JSON.parse(stdout.trim().split('\n').pop())
  assert.ok(result.collected >= result.created - 2, `collected ${result.collected} of ${result.created}`)
  const growthMb = (result.heapAfter - result.heapBefore) / 1024 / 1024
  assert.ok(growthMb < 32, `heap grew ${growthMb.toFixed(1)} MB over 300 generations`)
})

// a JSX runtime as a package of the bundle: elements rendered to HTML text
const miniJsx = {
  'node_modules/mini-jsx/package.json': JSON.stringify({
    name: 'mini-jsx',
    version: '1.0.0',
    exports: { '.': './index.js', './jsx-runtime': './jsx-runtime.js' },
  }),
  'node_modules/mini-jsx/index.js': `
const render = (type, props) => {
  const { children, ...attrs } = props ?? {}
  const inner = [children].flat(Infinity).filter((c) => c != null && c !== false).join('')
  if (typeof type === 'function') return type({ ...attrs, children })
  if (type === null) return inner
  const list = Object.entries(attrs).map(([k, v]) => ' ' + k + '="' + v + '"').join('')
  return '<' + type + list + '>' + inner + '</' + type + '>'
}
exports.render = render
exports.h = (type, props, ...children) => render(type, { ...props, children })
exports.Fragment = null
`,
  'node_modules/mini-jsx/jsx-runtime.js': `
const { render, Fragment } = require('./index.js')
exports.jsx = render
exports.jsxs = render
exports.Fragment = Fragment
`,
}

test('JSX in .tsx and .jsx: the automatic runtime named by tsconfig.json from the bundle, the classic factory, extensionless imports', async (t) => {
  // the automatic runtime (tsconfig "jsx": "react-jsx"), in an ES module scope
  const automatic = await bundleOf(
    t,
    {
      ...miniJsx,
      'package.json': JSON.stringify({ name: 'm', type: 'module', dependencies: { 'mini-jsx': '1.0.0' } }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'react-jsx', jsxImportSource: 'mini-jsx' } }),
      'index.tsx': `
import { Page } from './page'
import { Item } from './item.js'
export function register (): { html: string; strict: boolean } {
  const items: string[] = ['a', 'b']
  return { html: <Page title="t">{items.map((i) => <Item name={i} />)}</Page>, strict: this === undefined }
}
`,
      'page.tsx': `
interface Props { title: string; children?: unknown }
export const Page = ({ title, children }: Props): string => <main><h1>{title}</h1><>{children}</></main>
`,
      'item.jsx': 'export const Item = ({ name }) => <li class="item">{name}</li>\n',
    },
    { main: 'index.tsx' },
  )
  assert.deepEqual(loadModuleCode(automatic).exports.register.call(undefined), {
    html: '<main><h1>t</h1><li class="item">a</li><li class="item">b</li></main>',
    strict: true,
  })

  // the classic factory (tsconfig jsxFactory), in a CommonJS scope; index.tsx found for a folder
  const classic = await bundleOf(
    t,
    {
      ...miniJsx,
      'package.json': JSON.stringify({ name: 'm', dependencies: { 'mini-jsx': '1.0.0' } }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'react', jsxFactory: 'h' } }),
      'index.tsx': `
import { h } from 'mini-jsx'
import card from './card'
export const register = (): string => card('x')
`,
      'card/index.tsx': `
import { h } from 'mini-jsx'
export default (text: string): string => <p id="card">{text}</p>
`,
    },
    { main: 'index.tsx' },
  )
  assert.equal(loadModuleCode(classic).exports.register(), '<p id="card">x</p>')

  // "jsx": "preserve" (Next.js's default) leaves JSX to the last tool, which applies the
  // automatic runtime; a tsconfig.json as tools write it, with comments and trailing commas
  const preserve = await bundleOf(
    t,
    {
      ...miniJsx,
      'package.json': JSON.stringify({ name: 'm', dependencies: { 'mini-jsx': '1.0.0' } }),
      'tsconfig.json': `{
  // as tsc --init and Next.js write it
  "compilerOptions": {
    "jsx": "preserve",
    "jsxImportSource": "mini-jsx", /* the bundle's runtime */
  },
}
`,
      'index.tsx': 'export const register = (): string => <p class="kept">ok</p>\n',
    },
    { main: 'index.tsx' },
  )
  assert.equal(loadModuleCode(preserve).exports.register(), '<p class="kept">ok</p>')
  // with a factory named beside it, the classic factory
  const preserveFactory = await bundleOf(
    t,
    {
      ...miniJsx,
      'package.json': JSON.stringify({ name: 'm', dependencies: { 'mini-jsx': '1.0.0' } }),
      'tsconfig.json': JSON.stringify({ compilerOptions: { jsx: 'preserve', jsxFactory: 'h' } }),
      'index.tsx': "import { h } from 'mini-jsx'\nexport const register = (): string => <b>h</b>\n",
    },
    { main: 'index.tsx' },
  )
  assert.equal(loadModuleCode(preserveFactory).exports.register(), '<b>h</b>')

  // "Preserve" in any case, CR line endings, a trailing comma before a long run of commented-out
  // options (as an edited tsc --init leaves them); a file's own @jsx pragma keeps its factory
  const commented = Array.from({ length: 40 }, (_, i) => `    // "option${i}": true,`).join('\r')
  const edited = await bundleOf(
    t,
    {
      ...miniJsx,
      'package.json': JSON.stringify({ name: 'm', dependencies: { 'mini-jsx': '1.0.0' } }),
      'tsconfig.json': `{\r  "compilerOptions": {\r    "jsx": "Preserve", // kept\r    "jsxImportSource": "mini-jsx",\r${commented}\r  }\r}\r`,
      'index.tsx':
        "import { pragma } from './pragma'\nexport const register = (): string => <i>{pragma()}</i>\n",
      'pragma.tsx':
        "/** @jsx h */\nimport { h } from 'mini-jsx'\nexport const pragma = (): string => <u>p</u>\n",
    },
    { main: 'index.tsx' },
  )
  assert.equal(loadModuleCode(edited).exports.register(), '<i><u>p</u></i>')
})

test('tsconfig.json is read as TypeScript reads it: comments, trailing commas, other line endings and white space', async () => {
  const { parseJsoncText } = await import('../dist/loader/json-text.js')
  assert.deepEqual(parseJsoncText('{ "a": "x // not a comment /* nor this */", // one\n "b": [1, 2,], }'), {
    a: 'x // not a comment /* nor this */',
    b: [1, 2],
  })
  assert.deepEqual(parseJsoncText('{"q": "say \\"hi\\"\\\\", /* c */}'), { q: 'say "hi"\\' })
  assert.deepEqual(parseJsoncText('\ufeff{"a": 1,' + ' '.repeat(300) + '}'), { a: 1 })
  assert.deepEqual(parseJsoncText('{"a": 1, // x\r"b": 2\u00a0}'), { a: 1, b: 2 })
  assert.deepEqual(parseJsoncText('{"a": 1,\n  // x\n  /* y */\n}'), { a: 1 })
  assert.equal(parseJsoncText('{"a": '), undefined)
  assert.equal(parseJsoncText('{"a": "open'), undefined)
  assert.equal(parseJsoncText('{"a": 1 /* open'), undefined)
})

test('a JSX syntax error in a .tsx file is refused with its line, at pack time and by the loader', async (t) => {
  const root = await makeRoot(t)
  const dir = await moduleDir(
    root,
    'm',
    { main: 'index.tsx' },
    {
      'index.tsx': 'export const register = () => 1\nexport const view = <div><span></div>\n',
    },
  )
  await assert.rejects(
    run(process.execPath, [
      path.join(projectRoot, 'dist', 'cli.js'),
      'pack',
      dir,
      '-o',
      path.join(root, 'm.zip'),
    ]),
    (err) => /NYALA_ERR_MODULE_SYNTAX/.test(err.stderr) && /index\.tsx:2/.test(err.stderr),
  )
  const bundle = await openBundle(await packWithZip(dir, path.join(root, 'modules', 'm.zip')))
  assert.throws(
    () => loadModuleCode(bundle),
    (err) => err.code === 'NYALA_ERR_MODULE_SYNTAX' && /index\.tsx:2/.test(err.message),
  )
})

// compiled code shipped with its source map, as tsc and esbuild write it
const shippedSources = {
  'src/lib/fail.ts': `type Why = string

// the throw is on line 5, column 9
export function fail (why: Why): never {
  throw new Error(\`failed: \${why}\`)
}
`,
  'src/index.ts': `import { fail } from './lib/fail'

export function register (): never {
  return fail('shipped')
}
`,
}

/** The stack of what the bundle's register throws. */
function registerStack(bundle) {
  try {
    loadModuleCode(bundle).exports.register()
  } catch (err) {
    return err.stack
  }
  assert.fail('register did not throw')
}

/** Frames name the TypeScript sources, line and column of the throw, never the compiled files. */
function assertNamesSources(stack, how) {
  assert.match(stack, /\n {4}at fail \(.*\/m\.zip\/src\/lib\/fail\.ts:5:9\)/, `${how}: ${stack}`)
  assert.match(stack, /\/m\.zip\/src\/index\.ts:4:\d+\)/, `${how}: ${stack}`)
  assert.doesNotMatch(stack, /m\.zip\/dist\//, `${how}: ${stack}`)
}

/** A module compiled by tsc into dist/ with .map files beside it, packed by nyala pack. */
async function tscBundle(t, compilerOptions, fields = {}, files = {}) {
  const root = await makeRoot(t)
  const dir = await moduleDir(
    root,
    'm',
    { main: 'dist/index.js', ...fields },
    {
      ...shippedSources,
      ...files,
      'tsconfig.json': JSON.stringify({
        compilerOptions: {
          outDir: 'dist',
          rootDir: 'src',
          sourceMap: true,
          target: 'es2022',
          strict: true,
          ...compilerOptions,
        },
        include: ['src'],
      }),
    },
  )
  await run(process.execPath, [path.join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir])
  const bundle = await openBundle(await packWithNyala(dir, path.join(root, 'modules', 'm.zip')))
  assert.ok(bundle.files.has('dist/lib/fail.js.map'), 'tsc wrote the map and nyala pack kept it')
  return bundle
}

test("compiled code shipped with its source map: stacks name the map's sources (tsc's .map files, CommonJS and ES modules; esbuild's inline maps; the same code in two bundles)", async (t) => {
  const { transformSync } = await import('esbuild')
  // tsc, CommonJS: run as it is, mapped by the .map file beside it
  assertNamesSources(registerStack(await tscBundle(t, { module: 'commonjs' })), 'tsc, CommonJS')
  // tsc, ES modules (a package of type module): transformed again by the host, then mapped through
  // both maps
  const esm = await tscBundle(
    t,
    { module: 'esnext', moduleResolution: 'bundler' },
    {},
    { 'package.json': JSON.stringify({ name: 'm', type: 'module' }) },
  )
  assertNamesSources(registerStack(esm), 'tsc, ES modules')

  // esbuild, ES modules with inline maps: esbuild reads them itself as the host transforms
  const esmRoot = await makeRoot(t)
  const files = { 'package.json': JSON.stringify({ name: 'm', type: 'module' }) }
  for (const [file, source] of Object.entries(shippedSources)) {
    const outFile = file.replace(/^src\//, 'dist/').replace(/\.ts$/, '.js')
    // the map's sources are relative to the compiled file, as esbuild writes them
    const out = transformSync(source.replace("'./lib/fail'", "'./lib/fail.js'"), {
      loader: 'ts',
      format: 'esm',
      sourcemap: 'inline',
      sourcefile: path.posix.relative(path.posix.dirname(outFile), file),
    })
    files[outFile] = out.code
  }
  const esmDir = await moduleDir(esmRoot, 'm', { main: 'dist/index.js' }, { ...files, ...shippedSources })
  const inline = await openBundle(await packWithNyala(esmDir, path.join(esmRoot, 'modules', 'm.zip')))
  assertNamesSources(registerStack(inline), 'esbuild, inline maps')
  // the same compiled code in another bundle (another module shipping the same files): mapped
  // there too (esbuild's output for fail.js above is the same as for tsc's, too)
  assertNamesSources(
    registerStack(await tscBundle(t, { module: 'commonjs' })),
    'tsc, CommonJS, a second copy',
  )
})

test('source maps as Node reads them: a first-line column under the ES module transform, a comment after the map URL, a /*# comment, a map whose sources are not paths', async (t) => {
  // a map of `dist/x.js` saying its line 2 (the throw) came from src/x.ts line 20, column 1
  const mapOf = (sources) => JSON.stringify({ version: 3, sources, names: [], mappings: ';AAmBA' })
  const inline = (json) => `data:application/json;base64,${Buffer.from(json).toString('base64')}`
  const thrower = 'exports.boom = () => {\nthrow new Error("x") }\n'
  const bundle = await bundleOf(
    t,
    {
      // an ES module that throws on its first line: Node names column 35 (the `new`)
      'lib/w.mjs': 'export const boom = () => { throw new Error("first line") }\n',
      'dist/after.js': `${thrower}//# sourceMappingURL=${inline(mapOf(['../src/after.ts']))}\n// a comment after it\n`,
      'dist/block.js': `${thrower}/*# sourceMappingURL=${inline(mapOf(['../src/block.ts']))} */\n`,
      'dist/odd.js': `${thrower}//# sourceMappingURL=${inline(mapOf([1]))}\n`,
      'index.js': `
const stackOf = (fn) => { try { fn() } catch (err) { return err.stack } }
module.exports = {
  register () {},
  top: stackOf(() => require('./lib/w.mjs').boom()),
  after: stackOf(() => require('./dist/after.js').boom()),
  block: stackOf(() => require('./dist/block.js').boom()),
  odd: stackOf(() => require('./dist/odd.js').boom()),
}
`,
    },
    {},
    { pack: packWithZip },
  )
  const { exports } = loadModuleCode(bundle)
  assert.match(exports.top, /\n {4}at (\w+\.)?boom \(.*\/m\.zip\/lib\/w\.mjs:1:35\)/)
  assert.match(exports.after, /\n {4}at (\w+\.)?boom \(.*\/m\.zip\/src\/after\.ts:20:1\)/)
  assert.match(exports.block, /\n {4}at (\w+\.)?boom \(.*\/m\.zip\/src\/block\.ts:20:1\)/)
  // a map that names no file: the compiled line, and reading the stack does not throw
  assert.match(exports.odd, /\n {4}at (\w+\.)?boom \(.*\/m\.zip\/dist\/odd\.js:2:7\)/)
})
