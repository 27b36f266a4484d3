// nyala init: the scaffolded module's own test runs (node:test with Fastify's inject), the
// module packs and a real host serves it; the TypeScript scaffold type-checks against nyala's
// public types (tsc on the scaffold, 'nyala' linked to this checkout) and a type error is caught.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test from 'node:test'
import { promisify } from 'node:util'
import { makeRoot, modulesOf, projectRoot, request, runCli, startHost } from './helpers.js'

const run = promisify(execFile)

async function tempDir(t) {
  const dir = await mkdtemp(path.join(tmpdir(), 'nyala-init-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** What `npm install` would give the scaffold, linked from this checkout (no network in tests). */
async function linkDevDependencies(dir, names) {
  await mkdir(path.join(dir, 'node_modules', '@types'), { recursive: true })
  await symlink(projectRoot, path.join(dir, 'node_modules', 'nyala'))
  for (const name of names)
    await symlink(path.join(projectRoot, 'node_modules', name), path.join(dir, 'node_modules', name))
}

/** Runs a command to its end; resolves { code, out } (stdout and stderr together), never rejects. */
async function exec(file, args, cwd) {
  try {
    // a test runner started from a test sees NODE_TEST_CONTEXT and runs nothing: not ours to inherit
    const { NODE_TEST_CONTEXT, ...env } = process.env
    const { stdout, stderr } = await run(file, args, { cwd, env, timeout: 120_000 })
    return { code: 0, out: stdout + stderr }
  } catch (err) {
    return { code: err.code, out: `${err.stdout}${err.stderr}` }
  }
}

test('init writes a JavaScript module whose own test passes and fails when the route breaks; it packs and a host serves it', async (t) => {
  const root = await makeRoot(t)
  const dir = path.join(root, 'src', 'greeter')
  const res = await runCli(['init', dir])
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /JavaScript module greeter/)
  assert.deepEqual((await readdir(dir, { recursive: true })).sort(), [
    '.gitignore',
    '.nyalaignore',
    'README.md',
    'index.js',
    'module.properties',
    'package.json',
    'test',
    'test/register.test.js',
  ])
  const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'))
  assert.equal(pkg.type, 'commonjs')
  assert.deepEqual(pkg.dependencies, {})
  assert.deepEqual(Object.keys(pkg.devDependencies).sort(), ['fastify', 'nyala'])
  assert.match(await readFile(path.join(dir, 'module.properties'), 'utf8'), /^main=index\.js$/m)

  await linkDevDependencies(dir, ['fastify'])
  const passed = await exec(process.execPath, ['--test'], dir)
  assert.equal(passed.code, 0, passed.out)
  assert.match(passed.out, /# pass 1/)
  const main = path.join(dir, 'index.js')
  const source = await readFile(main, 'utf8')
  await writeFile(main, source.replace('generation: ctx.generation', 'generation: 2'))
  const failed = await exec(process.execPath, ['--test'], dir)
  assert.notEqual(failed.code, 0, 'the scaffold test sees a wrong answer')
  assert.match(failed.out, /# fail 1/)
  await writeFile(main, source)

  // devDependencies (fastify, nyala) stay out of the bundle, as do the test and the dotfiles
  const packed = await runCli(['pack', dir, '-o', path.join(modulesOf(root), 'greeter.zip')])
  assert.equal(packed.code, 0, packed.stderr)
  assert.match(packed.stdout, /module greeter 0\.1\.0, 4 files, 3 left out/)
  const host = await startHost(t, root)
  const answer = await request(host.url('/greeter'))
  assert.equal(answer.status, 200, answer.text)
  assert.deepEqual(answer.body, { module: 'greeter', version: '0.1.0', generation: 1 })
  await host.stop()
})

test('init --typescript type-checks against nyala (tsc, import type from "nyala") and tsc reports a type error in ctx use', async (t) => {
  const dir = path.join(await tempDir(t), 'billing')
  const res = await runCli(['init', dir, '--typescript', '--name', 'invoices'])
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /TypeScript module invoices/)
  const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8'))
  assert.equal(pkg.type, 'module')
  assert.equal(pkg.name, 'invoices')
  assert.match(await readFile(path.join(dir, 'module.properties'), 'utf8'), /^main=index\.ts$/m)
  assert.match(
    await readFile(path.join(dir, 'index.ts'), 'utf8'),
    /^import type \{ NyalaModule \} from 'nyala'$/m,
  )

  await linkDevDependencies(dir, ['fastify', '@types/node'])
  const tsc = path.join(projectRoot, 'node_modules', '.bin', 'tsc')
  const clean = await exec(tsc, ['-p', dir], dir)
  assert.equal(clean.code, 0, clean.out)

  const main = path.join(dir, 'index.ts')
  const source = await readFile(main, 'utf8')
  await writeFile(main, source.replace('module: ctx.name', 'module: ctx.nmae'))
  const typo = await exec(tsc, ['-p', dir], dir)
  assert.notEqual(typo.code, 0)
  assert.match(
    typo.out,
    /index\.ts\(\d+,\d+\): error TS\d+: Property 'nmae' does not exist on type 'ModuleContext'/,
  )

  // app is this module's Fastify instance: a route handler's reply is typed too
  await writeFile(main, source.replace("app.get('/'", "app.gett('/'"))
  const app = await exec(tsc, ['-p', dir], dir)
  assert.match(app.out, /Property 'gett' does not exist on type 'FastifyInstance/)

  // the test type-checks too: createTestContext's options are typed
  await writeFile(main, source)
  const testFile = path.join(dir, 'test', 'register.test.ts')
  await writeFile(testFile, (await readFile(testFile, 'utf8')).replace("version: '0.1.0' }", 'version: 1 }'))
  const opts = await exec(tsc, ['-p', dir], dir)
  assert.match(
    opts.out,
    /register\.test\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'/,
  )
})

test('init refuses a non-empty directory and a bad name, writing nothing; --help and usage', async (t) => {
  const dir = await tempDir(t)
  await writeFile(path.join(dir, 'notes.txt'), 'mine\n')
  const busy = await runCli(['init', dir])
  assert.equal(busy.code, 1)
  assert.equal(
    busy.stderr,
    `nyala: NYALA_ERR_INIT_NOT_EMPTY: ${dir} is not an empty directory (it holds "notes.txt"): nyala init writes only into a new or empty directory\n`,
  )
  assert.deepEqual(await readdir(dir), ['notes.txt'])
  const file = await runCli(['init', path.join(dir, 'notes.txt')])
  assert.equal(file.code, 1)
  assert.match(
    file.stderr,
    /NYALA_ERR_INIT_NOT_EMPTY: .*notes\.txt is not an empty directory \(it is a file\)/,
  )

  const bad = await runCli(['init', path.join(dir, 'new'), '--name', 'no/slashes'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^nyala: NYALA_ERR_INIT_NAME: module name "no\/slashes" is not valid/)
  assert.deepEqual(await readdir(dir), ['notes.txt'])

  const help = await runCli(['init', '--help'])
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^Usage: nyala init <dir> \[--typescript\] \[--name NAME\]/)
  const main = await runCli(['--help'])
  assert.match(main.stdout, /^ {2}init <dir> /m)
  const usage = await runCli(['init'])
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /NYALA_ERR_CLI_USAGE: init takes one directory/)
})
