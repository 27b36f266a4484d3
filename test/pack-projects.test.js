// nyala pack on module directories with a package.json: production dependencies from the module's
// own node_modules (real registry packages, copied from the project's node_modules), the rules
// that leave tests and dotfiles out, the summary, the refusal of a missing dependency, and the
// bundle served by a real host.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'node:test'
import { promisify } from 'node:util'
import {
  makeRoot,
  manifest,
  modulesOf,
  projectRoot,
  request,
  runCli,
  startHost,
  writeFiles,
} from './helpers.js'

const run = promisify(execFile)

async function tempDir(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nyala-pack-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Copies a package installed at the project root to `to` (a node_modules/... folder of a test project). */
async function install(project, name, to = `node_modules/${name}`) {
  await cp(path.join(projectRoot, 'node_modules', name), path.join(project, to), { recursive: true })
}

/** The entry names of a zip, from `unzip -Z1` (the system's unzip, not our reader). */
async function zipEntries(zip) {
  const { stdout } = await run('unzip', ['-Z1', zip])
  return stdout.split('\n').filter(Boolean).sort()
}

/** Packs `dir` with the CLI into `<dir>.zip` and returns the zip's entries. */
async function packedEntries(dir) {
  const res = await runCli(['pack', dir, '-o', `${dir}.zip`])
  assert.equal(res.code, 0, res.stderr)
  return zipEntries(`${dir}.zip`)
}

/**
 * A module "shop" whose package.json has debug (needs ms) and once (needs wrappy) as
 * dependencies, semver and an uninstalled package as optionalDependencies, and ms, wrappy and
 * minimist as devDependencies. wrappy is also installed nested under once (as npm does for a
 * version conflict), so the hoisted one is only the devDependency's.
 */
async function shopProject(dir) {
  const project = path.join(dir, 'shop')
  await writeFiles(project, {
    'module.properties': manifest({ version: '1.2.0' }),
    'package.json': JSON.stringify({
      name: 'shop',
      version: '1.2.0',
      dependencies: { debug: '^4', once: '^1' },
      optionalDependencies: { semver: '^7', 'not-installed-anywhere': '^1' },
      devDependencies: { ms: '^2', wrappy: '^1', minimist: '^1' },
    }),
    'index.js': `const debug = require('debug'); const once = require('once'); const semver = require('semver')
const { total } = require('./lib/cart')
module.exports = { async register (app) {
  const first = once(() => 'first')
  app.get('/', async () => ({ total: total([1, 2]), valid: semver.valid('1.2.3'), debug: typeof debug('shop'), once: [first(), first()] }))
} }\n`,
    'lib/cart.js': 'exports.total = (xs) => xs.reduce((a, b) => a + b, 0)\n',
    'lib/cart.js.map': '{"version":3}\n',
    'lib/cart.test.js': 'throw new Error("a test")\n',
    'lib/cart.spec.ts': 'throw new Error("a spec")\n',
    'lib/keep.test.js': 'module.exports = "kept by .nyalaignore"\n',
    'test/cart.test.js': 'throw new Error("a test")\n',
    'tests/more.js': 'throw new Error("a test")\n',
    '__tests__/x.js': 'throw new Error("a test")\n',
    'coverage/lcov.info': 'TN:\n',
    'docs/notes.md': '# notes\n',
    '.env': 'SECRET=1\n',
    '.git/config': '[core]\n',
    '.nyalaignore': '# project rules\ndocs/\n!lib/keep.test.js\n',
    'package-lock.json': '{}\n',
    'README.md': '# shop\n',
  })
  for (const name of ['debug', 'ms', 'once', 'wrappy', 'semver', 'minimist']) await install(project, name)
  await install(project, 'wrappy', 'node_modules/once/node_modules/wrappy')
  const nested = path.join(project, 'node_modules/once/node_modules/wrappy/package.json')
  const pkg = JSON.parse(await readFile(nested, 'utf8'))
  await writeFile(nested, JSON.stringify({ ...pkg, version: '1.0.2-nested' }))
  // what npm leaves in node_modules that is no package
  await writeFiles(project, {
    'node_modules/.package-lock.json': '{}\n',
    'node_modules/.bin/x': '#!/bin/sh\n',
  })
  return project
}

test('pack takes the production closure from node_modules, leaves tests, dotfiles and devDependencies out, and the host serves it', async (t) => {
  const root = await makeRoot(t)
  const project = await shopProject(root)
  const out = path.join(modulesOf(root), 'shop.zip')
  const res = await runCli(['pack', project, '-o', out])
  assert.equal(res.code, 0, res.stderr)
  const entries = await zipEntries(out)
  const own = entries.filter((e) => !e.startsWith('node_modules/'))
  assert.deepEqual(own, [
    'README.md',
    'index.js',
    'lib/cart.js',
    'lib/cart.js.map',
    'lib/keep.test.js',
    'module.properties',
    'package.json',
  ])
  const packages = new Set(
    entries.filter((e) => e.endsWith('/package.json')).map((e) => path.posix.dirname(e)),
  )
  assert.deepEqual([...packages].sort(), [
    'node_modules/debug',
    // ms is a devDependency, and debug needs it: it stays
    'node_modules/ms',
    'node_modules/once',
    // once's own wrappy, not the hoisted one (only a devDependency)
    'node_modules/once/node_modules/wrappy',
    'node_modules/semver',
  ])
  // a package's files come whole, as its author published them (its README, its own folders)
  assert.ok(entries.includes('node_modules/semver/functions/valid.js'))
  assert.ok(entries.includes('node_modules/debug/src/node.js'))
  assert.ok(
    !entries.some((e) => e.startsWith('node_modules/.bin') || e === 'node_modules/.package-lock.json'),
  )

  const summary = res.stdout.split('\n')[0]
  assert.match(
    summary,
    new RegExp(
      `^${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: module shop 1\\.2\\.0, ${entries.length} files \\(7 own, ${entries.length - 7} in 5 packages\\), \\d+ left out, [\\d.]+ [kM]?B raw, [\\d.]+ [kM]?B zipped, sha256 [0-9a-f]{12}$`,
    ),
  )
  const versionOf = async (name) =>
    JSON.parse(await readFile(path.join(projectRoot, 'node_modules', name, 'package.json'), 'utf8')).version
  const expected = ['debug', 'ms', 'once'].map(async (n) => `${n}@${await versionOf(n)}`)
  assert.equal(
    res.stdout.split('\n')[1],
    `packages: ${(await Promise.all(expected)).join(' ')} wrappy@1.0.2-nested semver@${await versionOf('semver')}`,
  )

  const host = await startHost(t, root)
  const answer = await request(host.url('/shop'))
  assert.equal(answer.status, 200, answer.text)
  assert.deepEqual(answer.body, { total: 3, valid: '1.2.3', debug: 'function', once: ['first', 'first'] })
  await host.stop()
})

test('pack --list prints every entry, the packages and what was left out; packing twice gives the same bytes', async (t) => {
  const dir = await tempDir(t)
  const project = await shopProject(dir)
  const a = await runCli(['pack', project, '-o', path.join(dir, 'a', 'shop.zip'), '--list'])
  const b = await runCli(['pack', project, '-o', path.join(dir, 'b', 'shop.zip'), '--verbose'])
  assert.equal(a.code, 0, a.stderr)
  assert.equal(b.code, 0, b.stderr)
  const sha = async (f) =>
    createHash('sha256')
      .update(await readFile(f))
      .digest('hex')
  assert.equal(await sha(path.join(dir, 'a', 'shop.zip')), await sha(path.join(dir, 'b', 'shop.zip')))
  assert.match(a.stdout, /^entries \(\d+\):$/m)
  assert.match(a.stdout, /^ +\d+ B {2}lib\/cart\.js$/m)
  assert.match(a.stdout, /^ {2}wrappy@1\.0\.2-nested {2}node_modules\/once\/node_modules\/wrappy$/m)
  const leftOut = a.stdout.slice(a.stdout.indexOf('left out (')).split('\n').slice(1).filter(Boolean)
  assert.deepEqual(
    leftOut.map((l) => l.trim()),
    [
      '.env',
      '.git/',
      '.nyalaignore',
      '__tests__/',
      'coverage/',
      'docs/',
      'lib/cart.spec.ts',
      'lib/cart.test.js',
      'package-lock.json',
      'test/',
      'tests/',
    ],
  )
  // the same summary and listing on both (the path aside)
  assert.equal(
    a.stdout.replaceAll(`${path.sep}a${path.sep}`, '/'),
    b.stdout.replaceAll(`${path.sep}b${path.sep}`, '/'),
  )
})

test('a missing production dependency is refused naming the package, who needs it and the directory; nothing is written', async (t) => {
  const dir = await tempDir(t)
  const project = await shopProject(dir)
  // the hoisted ms is gone: debug cannot find it (a devDependency in package.json does not help)
  await rm(path.join(project, 'node_modules', 'ms'), { recursive: true })
  const out = path.join(dir, 'shop.zip')
  const res = await runCli(['pack', project, '-o', out])
  assert.equal(res.code, 1)
  assert.match(res.stderr, /^nyala: NYALA_ERR_PACK_DEPENDENCY_MISSING: /)
  assert.match(res.stderr, /production dependency "ms" \(needed by debug@4\.\d+\.\d+\)/)
  assert.ok(res.stderr.includes(`in ${project}/node_modules; run "npm install --omit=dev"`), res.stderr)
  await assert.rejects(readFile(out), { code: 'ENOENT' })

  // a direct dependency that was never installed
  await rm(path.join(project, 'node_modules'), { recursive: true })
  const none = await runCli(['pack', project, '-o', out])
  assert.equal(none.code, 1)
  assert.match(none.stderr, /production dependency "debug" \(needed by the module\)/)

  await writeFile(path.join(project, 'package.json'), '{ "dependencies": ')
  const bad = await runCli(['pack', project, '-o', out])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /NYALA_ERR_PACK_PACKAGE_JSON: .*shop\/package\.json: cannot read package\.json/)
})

test('a files array packs only what it names (and module.properties, package.json, the main file); without package.json node_modules goes as it is', async (t) => {
  const dir = await tempDir(t)
  const listed = await writeFiles(path.join(dir, 'listed'), {
    'module.properties': manifest({ main: 'src/main.js' }),
    'package.json': JSON.stringify({ name: 'listed', files: ['lib', 'assets/*.txt'] }),
    'src/main.js': `module.exports = { register () {} }\n`,
    'src/other.js': '',
    'lib/a.js': '',
    'lib/deep/b.js': '',
    'lib/deep/b.test.js': '',
    'assets/a.txt': '',
    'assets/a.bin': '',
    'README.md': '',
  })
  assert.deepEqual(await packedEntries(listed), [
    'assets/a.txt',
    'lib/a.js',
    'lib/deep/b.js',
    'module.properties',
    'package.json',
    'src/main.js',
  ])

  const plain = await writeFiles(path.join(dir, 'plain'), {
    'module.properties': manifest(),
    'index.js': `module.exports = { register () { require('leftpad') } }\n`,
    'index.test.js': '',
    'node_modules/leftpad/package.json': '{ "main": "index.js" }\n',
    'node_modules/leftpad/index.js': 'module.exports = 1\n',
    'node_modules/leftpad/test/t.js': '',
    'node_modules/.bin/leftpad': '',
  })
  assert.deepEqual(await packedEntries(plain), [
    'index.js',
    'module.properties',
    'node_modules/leftpad/index.js',
    'node_modules/leftpad/package.json',
    'node_modules/leftpad/test/t.js',
  ])
})

test("pack's zips are whole for the system's unzip: empty, incompressible and UTF-8-named entries come back byte for byte", async (t) => {
  const dir = await tempDir(t)
  const random = (await import('node:crypto')).randomBytes(50_000)
  const src = await writeFiles(path.join(dir, 'bytes'), {
    'module.properties': manifest(),
    'index.js': `module.exports = { register () {} }\n`,
    'empty.txt': '',
    'random.bin': random,
    'données/été.txt': 'ça va\n'.repeat(1000),
  })
  const zip = path.join(dir, 'bytes.zip')
  const res = await runCli(['pack', src, '-o', zip])
  assert.equal(res.code, 0, res.stderr)
  const check = await run('unzip', ['-t', zip])
  assert.match(check.stdout, /No errors detected/)
  const { stdout: info } = await run('zipinfo', [zip])
  assert.match(info, /random\.bin$/m)
  assert.match(
    info.split('\n').find((l) => l.endsWith('random.bin')),
    / stor /,
    'incompressible data is stored',
  )
  assert.match(
    info.split('\n').find((l) => l.endsWith('été.txt')),
    / defN /,
  )
  const unpacked = await run('unzip', ['-p', zip, 'random.bin'], { encoding: 'buffer', maxBuffer: 1 << 20 })
  assert.ok(unpacked.stdout.equals(random))
  const text = await run('unzip', ['-p', zip, 'données/été.txt'])
  assert.equal(text.stdout, 'ça va\n'.repeat(1000))
  assert.equal((await run('unzip', ['-p', zip, 'empty.txt'])).stdout, '')
})

// 0xffff itself is the zip64 marker to readers: jszip refused exactly 65,535 entries without the records
for (const count of [0xffff, 70_002]) {
  test(`${count} entries get zip64 end records: the host and the system unzip read them all`, async (t) => {
    const { writeZip } = await import('../dist/bundle/zip-writer.js')
    const { openBundle } = await import('../dist/bundle/open-bundle.js')
    const dir = await tempDir(t)
    const files = new Map([
      ['index.js', Buffer.from('module.exports = { register () {} }\n')],
      ['module.properties', Buffer.from(manifest())],
    ])
    for (let i = 0; files.size < count; i++)
      files.set(`f/${String(i).padStart(5, '0')}.txt`, Buffer.from(`file ${i}\n`))
    const zip = path.join(dir, 'many.zip')
    await writeFile(zip, writeZip(zip, files, 6))
    const bundle = await openBundle(zip)
    assert.equal(bundle.files.size, count)
    const last = `f/${String(count - 3).padStart(5, '0')}.txt`
    assert.equal(bundle.files.get(last).toString(), `file ${count - 3}\n`)
    const { stdout } = await run('unzip', ['-l', zip], { maxBuffer: 64 << 20 })
    assert.match(stdout.trim().split('\n').at(-1), new RegExp(`\\s${count} files$`))
  })
}

test("a package folder that is a symbolic link (npm link) is packed as its content, at the link's place", async (t) => {
  const dir = await tempDir(t)
  const linked = await writeFiles(path.join(dir, 'linked'), {
    'module.properties': manifest(),
    'package.json': JSON.stringify({ name: 'linked', dependencies: { debug: '^4' } }),
    'index.js': `module.exports = { register () { require('debug') } }\n`,
  })
  await mkdir(path.join(linked, 'node_modules'))
  // debug linked from elsewhere; its own dependency (ms) installed beside it, as npm link leaves it
  await symlink(path.join(projectRoot, 'node_modules', 'debug'), path.join(linked, 'node_modules', 'debug'))
  await install(linked, 'ms')
  const entries = await packedEntries(linked)
  assert.ok(entries.includes('node_modules/debug/src/index.js'), entries.join('\n'))
  assert.ok(entries.includes('node_modules/ms/index.js'))
  assert.ok(!entries.some((e) => e.startsWith('node_modules/debug/node_modules/')))
})

test('pack refuses a syntax error as the host would (NYALA_ERR_MODULE_SYNTAX), writing nothing; a .tmp output is named as its module', async (t) => {
  const dir = await tempDir(t)
  const project = path.join(dir, 'greeter')
  await mkdir(path.join(project, 'lib'), { recursive: true })
  await writeFile(path.join(project, 'module.properties'), 'version=1.0.0\nmain=index.js\n')
  await writeFile(
    path.join(project, 'index.js'),
    "const { greet } = require('./lib/greet.js')\nmodule.exports = { async register (app) { app.get('/', async () => greet()) } }\n",
  )
  await writeFile(
    path.join(project, 'lib', 'greet.js'),
    "exports.greet = () => 'hi'\nexport function broken( {\n",
  )
  const out = path.join(dir, 'greeter.zip')
  const res = await runCli(['pack', project, '-o', out])
  assert.equal(res.code, 1, res.stdout)
  assert.match(res.stderr, /^nyala: NYALA_ERR_MODULE_SYNTAX: .*syntax error at lib\/greet\.js:\d+: /m)
  await assert.rejects(readFile(out), { code: 'ENOENT' })

  await writeFile(path.join(project, 'lib', 'greet.js'), "exports.greet = () => 'hi'\n")
  const tmp = await runCli(['pack', project, '-o', path.join(dir, 'greeter.zip.tmp')])
  assert.equal(tmp.code, 0, tmp.stderr)
  assert.match(tmp.stdout, /greeter\.zip\.tmp: module greeter 1\.0\.0, /)
})
