// Nyala's resolution (src/loader/resolve.ts) against Node's own, on the same packages installed on
// disk: real registry packages (devDependencies) and the hand-written corner cases of
// test/fixtures/packages. Node answers in a child process: require.resolve for `require`,
// import.meta.resolve with a parent URL for `import`.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'node:test'
import { promisify } from 'node:util'
import { openBundle } from '../dist/bundle/open-bundle.js'
import { ResolveFailure, resolveIndexOf, resolveRequest } from '../dist/loader/resolve.js'
import { manifest, projectRoot, writeFiles } from './helpers.js'

const run = promisify(execFile)
const registryPackages = ['chalk', 'nanoid', 'dunder-proto', 'math-intrinsics', 'uuid']
const fixturePackages = ['pat', 'legacy', 'selfy', 'modsync', 'condonly', 'bom', 'fallthru', '#hash']

// [from (a bundle entry), specifier]: every entry point of each package, and some that are not
const cases = [
  ['index.js', 'chalk'],
  ['index.js', 'nanoid'],
  ['index.js', 'nanoid/non-secure'],
  ['index.js', 'nanoid/package.json'],
  ['index.js', 'nanoid/index.js'], // not exported
  ['index.js', 'dunder-proto/get'],
  ['index.js', 'dunder-proto/set'],
  ['index.js', 'dunder-proto/package.json'],
  ['index.js', 'dunder-proto'], // no "." export, no main
  ['index.js', 'uuid'],
  ['index.js', 'uuid/package.json'],
  ['index.js', 'math-intrinsics/abs.js'], // not exported
  ['node_modules/chalk/source/index.js', '#ansi-styles'],
  ['node_modules/chalk/source/index.js', '#supports-color'],
  ['node_modules/chalk/source/index.js', '#nope'],
  ['index.js', 'pat'],
  ['index.js', 'pat/features/a.js'],
  ['index.js', 'pat/features/b.js'],
  ['index.js', 'pat/features/internal/x'], // excluded by a null target
  ['index.js', 'pat/features/nope.js'], // pattern matches, file missing
  ['index.js', 'pat/lib/m'],
  ['index.js', 'pat/data'],
  ['index.js', 'pat/package.json'],
  ['index.js', 'pat/src/index.cjs'], // not exported
  ['node_modules/pat/src/uses-imports.js', '#util/u'],
  ['node_modules/pat/src/uses-imports.js', '#cond'],
  ['node_modules/pat/src/uses-imports.js', '#dep'],
  ['node_modules/pat/src/uses-imports.js', 'pat/features/a.js'], // self-reference
  ['index.js', 'legacy'],
  ['index.js', 'legacy/lib/other.js'],
  ['index.js', 'legacy/lib/conf.json'],
  ['node_modules/selfy/lib/main.js', 'selfy'],
  ['node_modules/selfy/lib/main.js', 'selfy/extra'],
  ['node_modules/selfy/lib/main.js', 'selfy/nope'],
  ['index.js', 'selfy/extra'],
  ['index.js', 'modsync'],
  ['index.js', 'condonly'],
  // Node's PACKAGE_TARGET_RESOLVE: a condition whose nested conditions match nothing falls
  // through to the next one; null excludes; invalid targets in an array fall back
  ['index.js', 'fallthru'],
  ['index.js', 'fallthru/nested'],
  ['index.js', 'fallthru/arr'],
  ['index.js', 'fallthru/null-first'],
  ['index.js', 'fallthru/fallback-invalid'],
  ['index.js', 'fallthru/bad-target'],
  ['index.js', 'fallthru/bad-segment/x'],
  // patterns by the length of what precedes the *, then by their whole length (PATTERN_KEY_COMPARE)
  ['index.js', 'fallthru/abc/deep.js'],
  ['index.js', 'fallthru/p/x/y'],
  ['index.js', 'fallthru/p/y'],
  ['index.js', 'fallthru/p/x'],
  // as Node reads targets through file: URLs: a subpath ending in "/" is never exported, an
  // empty segment is only deprecated, percent-escapes are decoded (an escaped letter of
  // node_modules or an escaped "/" is refused), "\\" is "/", an invalid config in an array is thrown
  ['index.js', 'fallthru/sub/'],
  ['index.js', 'fallthru/'],
  ['index.js', 'fallthru/dbl'],
  ['index.js', 'fallthru/enc'],
  ['index.js', 'fallthru/encN'],
  ['index.js', 'fallthru/sp'],
  ['index.js', 'fallthru/bs'],
  ['index.js', 'fallthru/slash-enc'],
  ['index.js', 'fallthru/cfg-in-array'],
  ['index.js', 'fallthru/star/%78'],
  // what the * stands for is put in as it is ("$$" is not a replacement pattern); a "?" ends a name
  ['index.js', 'fallthru/star/a$$b'],
  ['index.js', 'fallthru/q'],
  // a #specifier with no "imports" in scope: require looks for a package of that name, import refuses
  ['index.js', '#hash'],
  ['node_modules/fallthru/inner.js', '#a/'],
  // imports targets naming a built-in, a nested fall-through, a pattern
  ['node_modules/fallthru/inner.js', '#crypto'],
  ['node_modules/fallthru/inner.js', '#nested'],
  ['node_modules/fallthru/inner.js', '#dir/y'],
  ['node_modules/fallthru/inner.js', '#'],
  ['node_modules/fallthru/inner.js', '#/x'],
  ['index.js', 'node:path'],
  ['index.js', 'fs'],
  ['index.js', './lib/helper.js'],
  ['lib/helper.js', '../index.js'],
  ['index.js', 'no-such-package-anywhere'],
]
// ES modules only: Node 20's require fails these (ERR_INVALID_URL_SCHEME: an imports target naming
// a built-in without its node: prefix); Nyala's require resolves them as import does
const importOnly = [['node_modules/fallthru/inner.js', '#fs']]
// CommonJS only: Node's ES module resolution refuses these (Nyala accepts them, see resolve.ts)
const requireOnly = [
  ['index.js', './lib/helper'],
  ['index.js', './lib'],
  ['index.js', 'legacy/lib/conf'],
  ['index.js', 'legacy/sub'],
  ['index.js', 'legacy/lib/other'],
  // a directory named with a trailing slash, as published code does (require('./'))
  ['index.js', './lib/'],
  ['lib/helper.js', './'],
  ['lib/helper.js', '../'],
  ['index.js', 'legacy/sub/'],
  // a package.json with a byte order mark, whose main is a directory with a trailing slash
  ['index.js', 'bom'],
  ['index.js', 'bom/lib/'],
]

const probe = `
import { statSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
const [root, list] = [process.argv[2], JSON.parse(process.argv[3])]
const answer = (fn) => { try { const r = fn(); return r.startsWith('file:') ? fileURLToPath(r) : r } catch (err) { return { error: err.code ?? err.message } } }
const out = list.map(([from, spec, mode]) => {
  const parent = root + '/' + from
  return mode === 'require'
    ? answer(() => createRequire(parent).resolve(spec))
    : answer(() => {
        // import.meta.resolve answers a URL for a file that does not exist, where import() fails
        const url = import.meta.resolve(spec, pathToFileURL(parent).href)
        if (url.startsWith('file:') && !statSync(fileURLToPath(url), { throwIfNoEntry: false })?.isFile()) throw new Error('not found')
        return url
      })
})
console.log(JSON.stringify(out))
`

test('resolution gives what Node gives, for require and import, on real and hand-written packages', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'nyala-resolve-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  await writeFiles(root, {
    'module.properties': manifest(),
    'package.json': JSON.stringify({ name: 'app', version: '1.0.0' }),
    'index.js': 'module.exports = {}',
    'lib/index.js': 'module.exports = {}',
    'lib/helper.js': 'module.exports = {}',
    'probe.mjs': probe,
  })
  for (const name of registryPackages) {
    await cp(path.join(projectRoot, 'node_modules', name), path.join(root, 'node_modules', name), {
      recursive: true,
    })
  }
  for (const name of fixturePackages) {
    await cp(
      path.join(projectRoot, 'test', 'fixtures', 'packages', name),
      path.join(root, 'node_modules', name),
      {
        recursive: true,
      },
    )
  }
  await writeFile(path.join(root, 'node_modules', '.keep'), '')
  const list = [
    ...cases.flatMap(([from, spec]) => [
      [from, spec, 'require'],
      [from, spec, 'import'],
    ]),
    ...requireOnly.map(([from, spec]) => [from, spec, 'require']),
    ...importOnly.map(([from, spec]) => [from, spec, 'import']),
  ]
  const { stdout } = await run(
    process.execPath,
    ['--experimental-import-meta-resolve', path.join(root, 'probe.mjs'), root, JSON.stringify(list)],
    { cwd: root },
  )
  const node = JSON.parse(stdout)
  const bundle = await openBundle(root)
  const index = resolveIndexOf(bundle.files)
  let resolvedByBoth = 0
  for (const [i, [from, spec, mode]] of list.entries()) {
    let nyala
    try {
      const r = resolveRequest(index, from, spec, mode)
      nyala = r.kind === 'entry' ? path.join(root, r.entry) : r.kind === 'builtin' ? r.id : r.file
    } catch (err) {
      assert.ok(err instanceof ResolveFailure, `${mode} ${spec} from ${from}: ${err.stack}`)
      nyala = { error: err.message }
    }
    const expected = node[i]
    const label = `${mode}('${spec}') from ${from}: Node ${JSON.stringify(expected)}, Nyala ${JSON.stringify(nyala)}`
    if (typeof expected === 'object') {
      assert.equal(typeof nyala, 'object', label)
      continue
    }
    // Node names built-ins with their node: prefix in import mode
    assert.equal(String(nyala).replace(/^node:/, ''), expected.replace(/^node:/, ''), label)
    resolvedByBoth++
  }
  // the comparison covers resolutions, not only refusals
  assert.ok(resolvedByBoth >= 60, `only ${resolvedByBoth} resolved`)
})
