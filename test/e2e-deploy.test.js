// `nyala deploy` end to end, against the real CLI and a real host on a root made from the
// shipped configuration: a good bundle, a bundle refused locally (syntax error), one refused by
// the host (register throws), --dry-run, no host running (with and without --no-wait), a host
// that does not watch staging (timeout), and an upload through the admin API (--admin URL).
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import {
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  packWithZip,
  projectRoot,
  request,
  runCli,
  startHost,
  waitUntil,
} from './helpers.js'

/** The shipped config/impala.properties (it watches the staging directory), on any free ports. */
async function shippedProperties(set = {}) {
  let text = await readFile(path.join(projectRoot, 'config', 'impala.properties'), 'utf8')
  const values = {
    port: '0',
    'admin.port': '0',
    ...set,
  }
  for (const [key, value] of Object.entries(values)) {
    const line = new RegExp(`^${key.replaceAll('.', '\\.')}=.*$`, 'm')
    assert.match(text, line, `the shipped configuration sets ${key}`)
    text = text.replace(line, `${key}=${value}`)
  }
  return text
}

const deployRoot = async (t, set) => makeRoot(t, await shippedProperties(set))

const answer = `module.exports = { async register (app, ctx) { app.get('/', async () => ({ generation: ctx.generation, version: ctx.version })) } }\n`

/** Packs a `hello` bundle of `version` to `<root>/out/<file>` (outside modules/ and staging/). */
async function bundle(root, version, { index = answer, file = 'hello.zip', pack = packWithNyala } = {}) {
  const dir = await moduleSource(root, `hello-${version}-${file}`, {
    fields: { version, prefix: '/hello' },
    files: { 'index.js': index },
  })
  return pack(dir, path.join(root, 'out', file))
}

/** The files in the root's staging directory (the shipped ../staging of modules/). */
async function staged(root) {
  const dir = path.join(root, 'staging')
  return existsSync(dir) ? readdir(dir) : []
}

const hello = async (host) => (await request(host.url('/hello/'))).body

/** A root serving hello 1.0.0 (generation 1) from modules/. */
async function serving(t, set) {
  const root = await deployRoot(t, set)
  const first = await bundle(root, '1.0.0')
  await writeFile(path.join(modulesOf(root), 'hello.zip'), await readFile(first))
  const host = await startHost(t, root)
  assert.deepEqual(await hello(host), { generation: 1, version: '1.0.0' })
  return { root, host }
}

const deployCli = (args, root) => runCli(['deploy', ...args], { cwd: root, timeoutMs: 90_000 })

test('deploy of a good bundle: the new generation serves, staging is empty, modules/ has it', async (t) => {
  const { root, host } = await serving(t)
  const next = await bundle(root, '1.1.0')
  const res = await deployCli([next, '--root', root], root)
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /^deployed hello 1\.1\.0: hello@2 \(1 module\) in \d+ ms$/m)
  assert.deepEqual(await hello(host), { generation: 2, version: '1.1.0' })
  assert.deepEqual(await staged(root), [])
  assert.deepEqual(await readFile(path.join(modulesOf(root), 'hello.zip')), await readFile(next))

  // --json: one object with the verdict; the root found from the working directory
  const again = await bundle(root, '1.2.0')
  const json = await deployCli([again, '--json'], root)
  assert.equal(json.code, 0, json.stderr)
  const verdict = JSON.parse(json.stdout)
  assert.equal(verdict.result, 'deployed')
  assert.equal(verdict.module, 'hello')
  assert.equal(verdict.version, '1.2.0')
  assert.deepEqual(verdict.generations, { hello: 3 })
  assert.deepEqual(verdict.modules, ['hello'])
  assert.equal(verdict.placed, path.join(root, 'staging', 'hello.zip'))
  assert.deepEqual(await hello(host), { generation: 3, version: '1.2.0' })

  // the same bytes again: nothing is rebuilt, and the staged copy does not stay behind
  const same = await deployCli([again], root)
  assert.equal(same.code, 0, same.stderr)
  assert.match(same.stdout, /^unchanged: /m)
  assert.deepEqual(await hello(host), { generation: 3, version: '1.2.0' })
  assert.deepEqual(await staged(root), [])
})

test('a bundle with a syntax error is refused before anything is written', async (t) => {
  const { root, host } = await serving(t)
  // zip, not nyala pack, which refuses a syntax error itself: deploy must check on its own
  const broken = await bundle(root, '1.1.0', { index: 'module.exports = {\n', pack: packWithZip })
  const res = await deployCli([broken, '--root', root], root)
  assert.equal(res.code, 1)
  assert.match(res.stderr, /^nyala: NYALA_ERR_MODULE_SYNTAX: .*index\.js:2/m)
  assert.equal(res.stdout, '')
  assert.deepEqual(await staged(root), [])
  assert.deepEqual(await hello(host), { generation: 1, version: '1.0.0' })
  // the host saw nothing: no reload was attempted
  assert.equal(host.logs().filter((r) => r.reload !== undefined).length, 0)
})

test('a bundle the host refuses (register throws): exit 1, old generation serving, staging clean', async (t) => {
  const { root, host } = await serving(t)
  const failing = await bundle(root, '1.1.0', {
    index: `module.exports = { async register () { throw new Error('no database') } }\n`,
    file: 'hello-1.1.0.zip',
  })
  const res = await deployCli([failing, '--root', root], root)
  assert.equal(res.code, 1)
  assert.match(res.stderr, /^nyala: NYALA_ERR_MODULE_REGISTER_FAILED: .*no database/m)
  assert.match(res.stderr, /removed staging\/hello-1\.1\.0\.zip again/)
  assert.deepEqual(await hello(host), { generation: 1, version: '1.0.0' })
  assert.deepEqual(await staged(root), [])
  assert.deepEqual((await readdir(modulesOf(root))).sort(), ['hello.zip'])
  // the host did try it: the refusal is its own
  assert.ok(host.logs().some((r) => r.code === 'NYALA_ERR_MODULE_REGISTER_FAILED'))
})

test('--dry-run validates and prints what would be deployed, placing nothing', async (t) => {
  const root = await deployRoot(t)
  const next = await bundle(root, '1.1.0')
  const res = await deployCli([next, '--dry-run', '--root', root], root)
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /^valid: hello 1\.1\.0 \(prefix \/hello, 2 files, sha256 [0-9a-f]{64}\)$/m)
  assert.match(res.stdout, /^would be placed in staging\/hello\.zip$/m)
  assert.deepEqual(await staged(root), [])

  const json = JSON.parse((await deployCli([next, '--dry-run', '--json'], root)).stdout)
  assert.equal(json.result, 'valid')
  assert.equal(json.files, 2)

  const help = await deployCli(['--help'], root)
  assert.equal(help.code, 0)
  assert.match(help.stdout, /^Usage: nyala deploy <bundle>/)
  assert.match((await runCli(['--help'])).stdout, /^ {2}deploy <file> /m)
  const usage = await deployCli([], root)
  assert.equal(usage.code, 2)
  assert.match(usage.stderr, /NYALA_ERR_CLI_USAGE/)

  // refusals: a bad name, a missing manifest
  const badName = await deployCli([path.join(root, 'out', 'nothing.tar'), '--dry-run'], root)
  assert.equal(badName.code, 1)
  assert.match(badName.stderr, /NYALA_ERR_DEPLOY_NAME/)
  const bare = path.join(root, 'src', 'bare')
  await mkdir(bare, { recursive: true })
  await writeFile(path.join(bare, 'index.js'), answer)
  const noManifest = await packWithZip(bare, path.join(root, 'out', 'bare.zip'))
  const missing = await deployCli([noManifest, '--dry-run'], root)
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /^nyala: NYALA_ERR_MANIFEST_MISSING: /m)
  assert.deepEqual(await staged(root), [])
})

test('no host running: placed and said so (exit 1, or 0 with --no-wait); a host started later loads it', async (t) => {
  const root = await deployRoot(t)
  const first = await bundle(root, '1.0.0')
  await writeFile(path.join(modulesOf(root), 'hello.zip'), await readFile(first))
  const next = await bundle(root, '1.1.0')

  const waiting = await deployCli([next], root)
  assert.equal(waiting.code, 1)
  assert.match(
    waiting.stderr,
    /^nyala: NYALA_ERR_DEPLOY_NO_HOST: placed staging\/hello\.zip; no host is running at .*: it is loaded when the host starts$/m,
  )
  assert.deepEqual(await staged(root), ['hello.zip'])

  const noWait = await deployCli([next, '--no-wait'], root)
  assert.equal(noWait.code, 0, noWait.stderr)
  assert.match(noWait.stdout, /^placed staging\/hello\.zip; no host is running at /m)
  assert.deepEqual(await staged(root), ['hello.zip'])

  const host = await startHost(t, root)
  // a staged file present at start is picked up once the modules have loaded
  await waitUntil(async () => (await hello(host)).version === '1.1.0', 'the staged bundle to serve', 30_000)
  await waitUntil(async () => (await staged(root)).length === 0, 'staging to be empty', 30_000)
})

test('a host that does not watch staging: --timeout ends the wait, naming the keys to set', async (t) => {
  const { root } = await serving(t, { 'auto.reload.monitoring.type': 'default' })
  const next = await bundle(root, '1.1.0')
  const res = await deployCli([next, '--timeout', '1.5'], root)
  assert.equal(res.code, 1)
  assert.match(
    res.stderr,
    /^nyala: NYALA_ERR_DEPLOY_TIMEOUT: staging\/hello\.zip is still in the staging directory/m,
  )
  assert.match(res.stderr, /auto\.reload\.modules=true/)
  assert.match(res.stderr, /auto\.reload\.monitoring\.type/)
  assert.match(res.stderr, /stagingDirectory/)
  assert.deepEqual(await staged(root), ['hello.zip'])

  // --no-wait with a running host: placed, exit 0 at once
  const noWait = await deployCli([next, '--no-wait'], root)
  assert.equal(noWait.code, 0, noWait.stderr)
  assert.match(noWait.stdout, /^placed staging\/hello\.zip \(hello 1\.1\.0\); not waiting for the verdict$/m)
})

test('--admin URL uploads the bundle (PUT /deploy/:file) under the admin token rules', async (t) => {
  const { root, host } = await serving(t, { 'admin.token': 's3cret' })
  const admin = `http://127.0.0.1:${host.adminPort}`
  const next = await bundle(root, '1.1.0')
  // run from elsewhere: nothing is read from the root
  const cwd = path.join(root, 'out')

  const denied = await runCli(['deploy', next, '--admin', admin], { cwd, env: { NYALA_ADMIN_TOKEN: '' } })
  assert.equal(denied.code, 1)
  assert.match(denied.stderr, /NYALA_ERR_ADMIN_UNAUTHORIZED/)
  assert.deepEqual(await staged(root), [])
  // a URL the API does not serve: the host's own code, not "expected an event stream"
  const wrongPath = await runCli(['deploy', next, '--admin', `${admin}/nope`, '--token', 's3cret'], { cwd })
  assert.equal(wrongPath.code, 1)
  assert.match(wrongPath.stderr, /NYALA_ERR_ADMIN_NOT_FOUND/, wrongPath.stderr)
  assert.deepEqual(await staged(root), [])

  const res = await runCli(['deploy', next, '--admin', admin, '--token', 's3cret'], { cwd })
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /^deployed hello 1\.1\.0: hello@2 \(1 module\) in \d+ ms$/m)
  assert.deepEqual(await hello(host), { generation: 2, version: '1.1.0' })
  assert.deepEqual(await staged(root), [])

  // refused by the host: the upload is removed again (DELETE /deploy/:file)
  const failing = await bundle(root, '1.2.0', {
    index: `module.exports = { async register () { throw new Error('no database') } }\n`,
  })
  const refused = await runCli(['deploy', failing, '--admin', admin], {
    cwd,
    env: { NYALA_ADMIN_TOKEN: 's3cret' },
  })
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /NYALA_ERR_MODULE_REGISTER_FAILED/)
  assert.deepEqual(await hello(host), { generation: 2, version: '1.1.0' })
  assert.deepEqual(await staged(root), [])

  // the route itself: a name that is no bundle name, or a path, is a 400 and writes nothing
  const auth = { authorization: 'Bearer s3cret', 'content-type': 'application/zip' }
  const data = await readFile(next)
  for (const name of ['..%2Fmodules%2Fhello.zip', 'hello.tar', '.hello.zip', '%2Fetc%2Fx.zip']) {
    const put = await request(`${admin}/deploy/${name}`, { method: 'PUT', headers: auth, body: data })
    assert.equal(put.status, 400, name)
    assert.equal(put.body.code, 'NYALA_ERR_DEPLOY_NAME', name)
  }
  assert.deepEqual(await staged(root), [])
  assert.deepEqual((await readdir(modulesOf(root))).sort(), ['hello.zip', 'hello.zip.previous'])

  // a local --no-wait places the file whatever the admin API answers (here: a wrong token)
  const third = await bundle(root, '1.2.0')
  const placed = await deployCli([third, '--no-wait', '--token', 'wrong'], root)
  assert.equal(placed.code, 0, placed.stderr)
  assert.match(placed.stdout, /^placed staging\/hello\.zip \(hello 1\.2\.0\); not waiting for the verdict$/m)
  await waitUntil(async () => (await hello(host)).version === '1.2.0', 'the placed bundle to serve', 30_000)
})

test('the verdict is the reload of the placed file: another reload of the module ending meanwhile is not it', async (t) => {
  // hello's running bundle holds a reload in register until the test creates a file: a forced
  // reload of it is still running when deploy subscribes and places its file, and its end
  // (hello@2, the old version) comes before the deploy's own. Released by the test, not by a
  // timer, so the overlap is there however slow the machine.
  const slow = `module.exports = { async register (app, ctx) {
    const fs = require('fs')
    if (ctx.generation > 1) {
      fs.writeFileSync(ctx.config.hold + '.held', '')
      while (!fs.existsSync(ctx.config.hold)) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    app.get('/', async () => ({ generation: ctx.generation, version: ctx.version }))
  } }\n`
  const root = await deployRoot(t)
  const hold = path.join(root, 'release')
  await writeFile(path.join(root, 'config', 'hello.properties'), `hold=${hold}\n`)
  await writeFile(
    path.join(modulesOf(root), 'hello.zip'),
    await readFile(await bundle(root, '1.0.0', { index: slow })),
  )
  const host = await startHost(t, root)
  const forced = request(host.admin('/modules/hello/reload?force=true'), { method: 'POST' })
  await waitUntil(() => existsSync(`${hold}.held`), 'the forced reload to be held in register')
  const next = await bundle(root, '1.1.0')
  const deploying = deployCli([next, '--root', root, '--json'], root)
  // deploy subscribes to the host's events before it places the file
  await waitUntil(async () => (await staged(root)).includes('hello.zip'), 'the placed file', 30_000)
  await writeFile(hold, '')
  const res = await deploying
  assert.equal(res.code, 0, res.stderr)
  const verdict = JSON.parse(res.stdout)
  assert.equal((await forced).body.generations.hello, 2, 'the forced reload made generation 2')
  assert.deepEqual(
    verdict.generations,
    { hello: 3 },
    'the verdict is the deployed file, not the forced reload',
  )
  assert.deepEqual(await hello(host), { generation: 3, version: '1.1.0' })
})

test('another copy of the module landing under the same name while deploy writes its own is not its verdict', async (t) => {
  // deploy is held after writing its temporary file, before its rename (a test-only pause point):
  // meanwhile a good 1.5.0 lands at staging/hello.zip and serves. Then deploy's own 2.0.0, whose
  // register throws, takes the same name and is refused: that refusal is deploy's answer, not
  // 1.5.0's success under the same path
  const { root, host } = await serving(t)
  const pauses = path.join(root, 'pauses')
  await mkdir(pauses)
  const broken = await bundle(root, '2.0.0', {
    index: `module.exports = { async register () { throw new Error('2.0.0 does not start') } }\n`,
  })
  const deploying = runCli(['deploy', broken, '--root', root], {
    cwd: root,
    timeoutMs: 90_000,
    env: { NYALA_FAULT_PAUSE_AT: 'place-written', NYALA_FAULT_PAUSE_DIR: pauses },
  })
  await waitUntil(
    () => existsSync(path.join(pauses, 'paused-place-written')),
    'deploy to be held before its rename',
  )
  const other = await bundle(root, '1.5.0', { file: 'other.zip' })
  const part = path.join(root, 'staging', '.other.part')
  await writeFile(part, await readFile(other))
  await rename(part, path.join(root, 'staging', 'hello.zip'))
  await waitUntil(async () => (await hello(host)).version === '1.5.0', 'the other copy to serve', 30_000)
  await writeFile(path.join(pauses, 'resume-place-written'), '')
  const res = await deploying
  assert.equal(res.code, 1, `${res.stdout}\n${res.stderr}`)
  assert.match(res.stderr, /^nyala: NYALA_ERR_MODULE_REGISTER_FAILED: /m)
  assert.doesNotMatch(res.stdout, /deployed/)
  assert.deepEqual(await hello(host), { generation: 2, version: '1.5.0' }, 'the other copy still serves')
})

test('a deploy set aside for a newer file of its module says so (NYALA_ERR_DEPLOY_SUPERSEDED), exit 1', async (t) => {
  // with use.touch.file=true both files wait for the touch, then the later one (the .tmp) wins
  const { root, host } = await serving(t, { 'use.touch.file': 'true' })
  const older = await bundle(root, '1.1.0')
  const deploying = deployCli([older, '--timeout', '60'], root)
  await waitUntil(async () => (await staged(root)).includes('hello.zip'), 'the staged file', 30_000)
  const newer = await bundle(root, '1.2.0', { file: 'hello-newer.zip' })
  await writeFile(path.join(modulesOf(root), '.hello.part'), await readFile(newer))
  await rename(path.join(modulesOf(root), '.hello.part'), path.join(modulesOf(root), 'hello.zip.tmp'))
  await writeFile(path.join(modulesOf(root), 'touch.txt'), '')
  const res = await deploying
  assert.equal(res.code, 1)
  assert.match(res.stderr, /^nyala: NYALA_ERR_DEPLOY_SUPERSEDED: /m)
  assert.match(res.stderr, /hello 1\.1\.0 was not deployed: a newer file of hello arrived meanwhile/)
  await waitUntil(async () => (await hello(host)).version === '1.2.0', 'the newer file to serve', 30_000)
  assert.deepEqual(await staged(root), ['hello.zip.superseded'], 'set aside, not deleted')
})
