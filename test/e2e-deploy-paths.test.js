// The three deploy paths out of the box (issue 13): a root with the shipped configuration
// serves a staged copy, a .tmp beside the bundle and the touch file together; the touch file
// always rescans; one module arriving on two paths at once resolves one documented way;
// files present at start-up are picked up; files on an inactive path are warned about.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, cp, mkdir, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  placeByRename as place,
  projectRoot,
  request,
  runCli,
  startHost,
  taggedBundle as variant,
  waitUntil,
} from './helpers.js'

/** A root whose config/impala.properties is the shipped one, on free ports. */
async function shippedRoot(t, extra = '') {
  const shipped = await readFile(path.join(projectRoot, 'config', 'impala.properties'), 'utf8')
  const text = shipped
    .replace(/^port=.*$/m, 'port=0')
    .replace(/^admin\.port=.*$/m, 'admin.port=0')
    .concat(`\n${extra}`)
  return makeRoot(t, text)
}

const stagingOf = (root) => path.join(root, 'staging')

const tagOf = async (host, prefix) => {
  const res = await request(host.url(prefix))
  return res.status === 200 ? res.body.tag : undefined
}

const warningsOf = (host, code) => host.logs().filter((r) => r.code === code)

test('the shipped configuration serves all three deploy paths together, and names them at start-up', async (t) => {
  const root = await shippedRoot(t)
  await deploy(root, 'hello')
  await deploy(root, 'shop')
  const host = await startHost(t, root)
  const line = host.logs().find((r) => Array.isArray(r.deployPaths))
  assert.ok(line, 'one start-up record lists the deploy paths')
  assert.deepEqual(
    line.deployPaths.map((p) => p.type),
    ['tmpfile', 'stagingDirectory', 'touch'],
  )
  assert.match(line.msg, /staging\//)
  assert.match(line.msg, /\.tmp/)
  assert.match(line.msg, /touch\.txt/)

  // 1. a bundle copied into staging/
  await place(await variant(root, 'hello', 'staged'), path.join(stagingOf(root), 'hello.zip'))
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'staged', 'the staged bundle')
  await waitUntil(async () => (await readdir(stagingOf(root))).length === 0, 'staging emptied')

  // 2. a .tmp dropped beside the module's bundle
  await place(await variant(root, 'shop', 'tmp'), path.join(modulesOf(root), 'shop.zip.tmp'))
  await waitUntil(async () => (await tagOf(host, '/shop')) === 'tmp', 'the .tmp bundle')
  await waitUntil(() => !existsSync(path.join(modulesOf(root), 'shop.zip.tmp')), '.tmp committed')
  assert.deepEqual(
    await readFile(path.join(modulesOf(root), 'shop.zip')),
    await readFile(path.join(root, 'src', 'shop-tmp.zip')),
  )

  // 3. the touch file (use.touch.file=false): a rescan finds what the watcher could not act on.
  // A staged module whose dependency is missing is refused and stays in staging; once the
  // dependency arrives as a .tmp, touching the touch file naming it retries and deploys it.
  await place(
    await variant(root, 'billing', 'v1', { 'depends-on': 'ledger' }),
    path.join(stagingOf(root), 'billing.zip'),
  )
  await waitUntil(
    () => host.logs().some((r) => r.code === 'NYALA_ERR_DEPENDENCY_MISSING' && r.module === 'billing'),
    'the refusal of billing (no ledger yet)',
  )
  assert.ok(existsSync(path.join(stagingOf(root), 'billing.zip')), 'a refused file stays where it was')
  await place(await variant(root, 'ledger', 'v1'), path.join(modulesOf(root), 'ledger.zip.tmp'))
  await waitUntil(async () => (await tagOf(host, '/ledger')) === 'v1', 'ledger from its .tmp')
  await writeFile(path.join(modulesOf(root), 'touch.txt'), 'billing\n')
  await waitUntil(async () => (await tagOf(host, '/billing')) === 'v1', 'billing after the touch')
  assert.equal(existsSync(path.join(stagingOf(root), 'billing.zip')), false)
  const touch = host.logs().find((r) => r.trigger === 'touch' && Array.isArray(r.changed))
  assert.deepEqual(touch.changed, ['billing'])

  // the host's own commits into modules/ are not deploys on the (inactive) default path
  assert.deepEqual(warningsOf(host, 'NYALA_ERR_DEPLOY_PATH_INACTIVE'), [])
  // a stalled event loop is the machine's (a loaded CI box), not a deploy path's error
  assert.deepEqual(
    host
      .logs()
      .filter(
        (r) =>
          r.level >= 50 &&
          r.code !== 'NYALA_ERR_DEPENDENCY_MISSING' &&
          r.code !== 'NYALA_ERR_EVENT_LOOP_STALL',
      ),
    [],
  )
})

test('one module on two deploy paths at once: the file that arrived last is deployed, the other set aside', async (t) => {
  // the touch file as the only trigger makes both files wait, so they are present at once
  const root = await shippedRoot(t, 'use.touch.file=true\n')
  await deploy(root, 'hello')
  const touch = path.join(modulesOf(root), 'touch.txt')
  await writeFile(touch, '')
  const host = await startHost(t, root)
  const staged = path.join(stagingOf(root), 'hello.zip')
  const tmp = path.join(modulesOf(root), 'hello.zip.tmp')

  // staged first, .tmp later: the .tmp wins
  await place(await variant(root, 'hello', 'staged-a'), staged)
  await sleep(20)
  await place(await variant(root, 'hello', 'tmp-a'), tmp)
  await sleep(300)
  assert.equal((await request(host.url('/hello'))).body.generation, 1, 'nothing moves before the touch')
  await writeFile(touch, 'hello\n')
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'tmp-a', 'the later .tmp deployed')
  assert.ok(existsSync(`${staged}.superseded`), 'the staged file is set aside, not deleted')
  assert.equal(existsSync(staged), false)
  assert.deepEqual(
    await readFile(`${staged}.superseded`),
    await readFile(path.join(root, 'src', 'hello-staged-a.zip')),
  )
  const [first] = warningsOf(host, 'NYALA_ERR_DEPLOY_SUPERSEDED')
  assert.equal(first.module, 'hello')
  assert.equal(first.chosenVia, 'tmpfile')
  assert.equal(first.otherVia, 'stagingDirectory')

  // .tmp first, staged later: the staged file wins; the set-aside file does not come back
  await place(await variant(root, 'hello', 'tmp-b'), tmp)
  await sleep(20)
  await place(await variant(root, 'hello', 'staged-b'), staged)
  await writeFile(touch, '\n')
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'staged-b', 'the later staged file deployed')
  assert.ok(existsSync(`${tmp}.superseded`))
  assert.equal(warningsOf(host, 'NYALA_ERR_DEPLOY_SUPERSEDED').length, 2)
  await writeFile(touch, ' \n')
  await waitUntil(
    () => host.logs().some((r) => r.msg === 'touch file: nothing new for every deploy path'),
    'the touch that found nothing says so',
  )
  assert.equal(await tagOf(host, '/hello'), 'staged-b', 'a .superseded file is never deployed')
})

test('a .tmp dropped again at once is checked once: the look-again after the first check is not a second check', async (t) => {
  // after a watched check the host looks at the file again (100 ms and 1 s later) in case an event
  // was lost; a new file checked since at the same path is not "changed without an event"
  const root = await shippedRoot(t)
  await deploy(root, 'hello')
  const host = await startHost(t, root)
  const tmp = path.join(modulesOf(root), 'hello.zip.tmp')
  await place(await variant(root, 'hello', 'next'), tmp)
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'next', 'the .tmp deployed')
  const broken = path.join(root, 'src', 'broken.zip')
  await writeFile(broken, 'not a zip')
  await place(broken, tmp)
  const refusals = () => host.logs().filter((r) => r.code === 'NYALA_ERR_BUNDLE_NOT_ZIP')
  await waitUntil(() => refusals().length > 0, 'the broken .tmp refused')
  await sleep(1500)
  assert.equal(refusals().length, 1, 'the broken .tmp is checked once')
  assert.equal(await tagOf(host, '/hello'), 'next')
  assert.ok(existsSync(tmp), 'the refused .tmp stays')
})

for (const types of ['tmpfile, stagingDirectory', 'tmpfile, stagingDirectory, default']) {
  test(`a .tmp replaced while its commit is between its check and its rename: the newer one is not moved in untested (${types})`, async (t) => {
    // the host is held at the commit's rename (a test-only pause point) while v2 commits; the test
    // drops v3 onto the same .tmp name then. v3 must not land in modules/ untested with v2 serving:
    // it goes back to the .tmp and is deployed by a reload of its own. With the default type
    // watched too, the host's own write of v2 into modules/ is reported as well, after v3's .tmp:
    // it is not a deploy, and does not set v3 aside as older
    const root = await shippedRoot(t, `auto.reload.monitoring.type=${types}\n`)
    await deploy(root, 'hello')
    const pauses = path.join(root, 'pauses')
    await mkdir(pauses)
    const host = await startHost(t, root, [], {
      env: { NYALA_FAULT_PAUSE_AT: 'commit-before-rename:hello', NYALA_FAULT_PAUSE_DIR: pauses },
    })
    const tmp = path.join(modulesOf(root), 'hello.zip.tmp')
    await place(await variant(root, 'hello', 'v2'), tmp)
    await waitUntil(
      () => existsSync(path.join(pauses, 'paused-commit-before-rename')),
      'the commit to be held',
    )
    const v3 = await variant(root, 'hello', 'v3')
    await place(v3, tmp)
    await writeFile(path.join(pauses, 'resume-commit-before-rename'), '')
    await waitUntil(async () => (await tagOf(host, '/hello')) === 'v3', 'v3 to serve', 30_000)
    await waitUntil(() => !existsSync(tmp), 'the .tmp committed')
    assert.deepEqual(await readFile(path.join(modulesOf(root), 'hello.zip')), await readFile(v3))
    assert.deepEqual(
      host.logs().filter((r) => r.code === 'NYALA_ERR_DEPLOY_SUPERSEDED'),
      [],
    )
  })
}

test('a touch that reads a .tmp while its reload runs does not commit it a second time: .previous keeps the old bundle', async (t) => {
  // v2's register is held until the test releases it, so the touch's batch reads the same .tmp
  // and waits for the module's lock; by then v2 runs and its .tmp is committed. That batch has
  // nothing left to move: a second commit made .previous a copy of v2, and v1 was lost
  const root = await shippedRoot(t)
  const v1 = await variant(root, 'hello', 'v1')
  await writeFile(path.join(modulesOf(root), 'hello.zip'), await readFile(v1))
  const hold = path.join(root, 'release')
  await writeFile(path.join(root, 'config', 'hello.properties'), `hold=${hold}\n`)
  const held = await packWithNyala(
    await moduleSource(root, 'hello-held', {
      files: {
        'index.js': `module.exports = { async register (app, ctx) {
  const fs = require('fs')
  fs.writeFileSync(ctx.config.hold + '.held', '')
  while (!fs.existsSync(ctx.config.hold)) await new Promise((resolve) => setTimeout(resolve, 20))
  app.get('/', async () => ({ generation: ctx.generation, tag: 'v2' }))
} }\n`,
      },
    }),
    path.join(root, 'src', 'hello-held.zip'),
  )
  const host = await startHost(t, root)
  assert.equal(await tagOf(host, '/hello'), 'v1')
  const tmp = path.join(modulesOf(root), 'hello.zip.tmp')
  await place(held, tmp)
  await waitUntil(() => existsSync(`${hold}.held`), 'v2 to be held in register')
  const recent = async () => (await request(host.admin('/events/recent'))).body.events
  const starts = async () => (await recent()).filter((e) => e.phase === 'start' && e.files?.hello === tmp)
  await writeFile(path.join(modulesOf(root), 'touch.txt'), 'hello\n')
  await waitUntil(async () => (await starts()).length === 2, "the touch's reload of the same .tmp to start")
  await writeFile(hold, '')
  const [first, second] = (await starts()).map((e) => e.id)
  const end = async (id) =>
    (await recent()).find(
      (e) => e.id === id && e.phase !== 'start' && e.phase !== 'started' && e.phase !== 'blocked',
    )
  await waitUntil(async () => (await end(first))?.phase === 'swapped', 'v2 swapped in', 30_000)
  await waitUntil(async () => (await end(second)) !== undefined, "the touch's reload to end", 30_000)
  assert.equal((await end(second)).phase, 'unchanged')
  assert.equal(await tagOf(host, '/hello'), 'v2')
  assert.deepEqual(await readFile(path.join(modulesOf(root), 'hello.zip')), await readFile(held))
  assert.deepEqual(
    await readFile(path.join(modulesOf(root), 'hello.zip.previous')),
    await readFile(v1),
    '.previous is the bundle v2 replaced',
  )
})

test('a staging directory kept inside modules/ is not loaded as a module; bundles staged in it deploy', async (t) => {
  const root = await shippedRoot(t, 'auto.reload.staging.directory=staging\n')
  await deploy(root, 'hello')
  const staging = path.join(modulesOf(root), 'staging')
  await mkdir(staging)
  const host = await startHost(t, root)
  const modules = (await request(host.admin('/modules'))).body.modules.map((m) => [m.name, m.state])
  assert.deepEqual(modules, [['hello', 'running']])
  assert.deepEqual(
    host.logs().filter((r) => r.level >= 50),
    [],
    'no error at start-up',
  )
  await place(await variant(root, 'hello', 'staged'), path.join(staging, 'hello.zip'))
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'staged', 'the staged bundle to serve')
})

test('an exploded directory module replaced by a staged zip: the zip serves and takes its place', async (t) => {
  const root = await shippedRoot(t)
  const dir = await moduleSource(root, 'hello-dir', {
    files: {
      'index.js': `module.exports = { async register (app) { app.get('/', async () => ({ tag: 'dir' })) } }\n`,
    },
  })
  await cp(dir, path.join(modulesOf(root), 'hello'), { recursive: true })
  const host = await startHost(t, root)
  assert.equal(await tagOf(host, '/hello'), 'dir')
  await place(await variant(root, 'hello', 'zip'), path.join(stagingOf(root), 'hello.zip'))
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'zip', 'the zip to serve')
  await waitUntil(async () => (await readdir(stagingOf(root))).length === 0, 'staging to be empty')
  const left = (await readdir(modulesOf(root))).filter((f) => !f.startsWith('.') && f !== 'touch.txt')
  assert.deepEqual(left, ['hello.zip'], 'the directory is gone (not kept as .previous), the zip in its place')
  assert.deepEqual(
    host.logs().filter((r) => r.code === 'NYALA_ERR_RELOAD_COMMIT'),
    [],
  )
})

test('a touch batch with one file that does not open deploys the others, and refuses that one on its own', async (t) => {
  const root = await shippedRoot(t, 'use.touch.file=true\n')
  await writeFile(path.join(modulesOf(root), 'alpha.zip'), await readFile(await variant(root, 'alpha', 'a1')))
  await writeFile(path.join(modulesOf(root), 'beta.zip'), await readFile(await variant(root, 'beta', 'b1')))
  const host = await startHost(t, root)
  await place(await variant(root, 'alpha', 'a2'), path.join(modulesOf(root), 'alpha.zip.tmp'))
  const broken = path.join(root, 'src', 'beta-broken.zip')
  await writeFile(broken, 'not a zip')
  await place(broken, path.join(modulesOf(root), 'beta.zip.tmp'))
  const res = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(res.status, 200, JSON.stringify(res.body))
  assert.equal(res.body.result, 'reloaded')
  assert.deepEqual(res.body.changed, ['alpha'])
  assert.deepEqual(
    res.body.refused.map((r) => [r.module, r.code]),
    [['beta', 'NYALA_ERR_BUNDLE_NOT_ZIP']],
  )
  assert.equal(await tagOf(host, '/alpha'), 'a2')
  assert.equal(await tagOf(host, '/beta'), 'b1', "beta's old generation serves")
  assert.ok(existsSync(path.join(modulesOf(root), 'beta.zip.tmp')), "beta's refused .tmp stays")
  const failed = host.logs().filter((r) => r.code === 'NYALA_ERR_BUNDLE_NOT_ZIP')
  assert.deepEqual(
    failed.map((r) => r.module),
    ['beta'],
  )
  // the CLI's rescan, with only beta's file left to find, says so and exits 1
  const cli = await runCli(['reload', '--root', root])
  assert.equal(cli.code, 1, cli.stdout)
  assert.match(cli.stderr, /^nyala: NYALA_ERR_BUNDLE_NOT_ZIP: .*beta\.zip\.tmp: not a zip file/m)
})

test('a batch whose second commit fails puts the first one back, a renaming commit too: modules/ holds what serves', async (t) => {
  // as below, alpha's new bundle staged under a new name (alpha-2.zip): its commit puts the new
  // name in and removes alpha.zip; undone, alpha.zip is back and alpha-2.zip waits in staging/
  const root = await shippedRoot(t, 'use.touch.file=true\n')
  const a1 = await variant(root, 'alpha', 'a1')
  await writeFile(path.join(modulesOf(root), 'alpha.zip'), await readFile(a1))
  const beta = (tag) => variant(root, 'beta', tag, { 'depends-on': 'alpha' })
  await writeFile(path.join(modulesOf(root), 'beta.zip'), await readFile(await beta('b1')))
  const host = await startHost(t, root)
  const a2 = await variant(root, 'alpha', 'a2')
  await place(a2, path.join(stagingOf(root), 'alpha-2.zip'))
  await place(await beta('b2'), path.join(modulesOf(root), 'beta.zip.tmp'))
  await mkdir(path.join(modulesOf(root), 'beta.zip.previous', 'inside'), { recursive: true })
  const res = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(res.status, 422, JSON.stringify(res.body))
  assert.equal(res.body.error.module, 'beta')
  assert.equal(await tagOf(host, '/alpha'), 'a1')
  const bundles = (await readdir(modulesOf(root))).filter((f) => f.startsWith('alpha'))
  assert.deepEqual(bundles, ['alpha.zip'], 'alpha.zip back, alpha-2.zip not in modules/')
  assert.deepEqual(await readFile(path.join(modulesOf(root), 'alpha.zip')), await readFile(a1))
  assert.deepEqual(
    await readFile(path.join(stagingOf(root), 'alpha-2.zip')),
    await readFile(a2),
    'waits in staging/',
  )
  assert.deepEqual(
    host.logs().filter((r) => r.msg?.includes('could not be put back')),
    [],
  )
})

test('a batch whose second commit fails puts the first one back: modules/ holds what serves, the .tmp waits again', async (t) => {
  // beta depends on alpha, so alpha's files are committed first; beta's commit then fails (its
  // .previous is a directory that is not empty). The reload fails and the old generations serve:
  // alpha's commit is undone, or modules/ would hold a bundle that does not serve and its .tmp
  // would be gone
  const root = await shippedRoot(t, 'use.touch.file=true\n')
  const a1 = await variant(root, 'alpha', 'a1')
  await writeFile(path.join(modulesOf(root), 'alpha.zip'), await readFile(a1))
  await writeFile(
    path.join(modulesOf(root), 'beta.zip'),
    await readFile(await variant(root, 'beta', 'b1', { 'depends-on': 'alpha' })),
  )
  const host = await startHost(t, root)
  const a2 = await variant(root, 'alpha', 'a2')
  await place(a2, path.join(modulesOf(root), 'alpha.zip.tmp'))
  await place(
    await variant(root, 'beta', 'b2', { 'depends-on': 'alpha' }),
    path.join(modulesOf(root), 'beta.zip.tmp'),
  )
  const blocker = path.join(modulesOf(root), 'beta.zip.previous')
  await mkdir(path.join(blocker, 'inside'), { recursive: true })
  const res = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(res.status, 422, JSON.stringify(res.body))
  assert.equal(res.body.error.code, 'NYALA_ERR_RELOAD_COMMIT')
  assert.equal(res.body.error.module, 'beta')
  assert.equal(await tagOf(host, '/alpha'), 'a1')
  assert.equal(await tagOf(host, '/beta'), 'b1')
  assert.deepEqual(
    await readFile(path.join(modulesOf(root), 'alpha.zip')),
    await readFile(a1),
    'alpha.zip is what serves',
  )
  assert.deepEqual(
    await readFile(path.join(modulesOf(root), 'alpha.zip.tmp')),
    await readFile(a2),
    "alpha's .tmp waits again",
  )
  assert.ok(existsSync(path.join(modulesOf(root), 'beta.zip.tmp')))
  assert.deepEqual(
    host.logs().filter((r) => r.msg?.includes('could not be put back')),
    [],
  )
  // with the obstacle gone, the same deploy goes through
  await rm(blocker, { recursive: true })
  const again = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(again.status, 200, JSON.stringify(again.body))
  assert.equal(await tagOf(host, '/alpha'), 'a2')
  assert.equal(await tagOf(host, '/beta'), 'b2')
  assert.deepEqual(await readFile(path.join(modulesOf(root), 'alpha.zip.previous')), await readFile(a1))
})

test('with use.touch.file=true, a touch while the modules are loading is not lost', async (t) => {
  // alpha's first register waits until the test releases it: the host is still loading when the
  // touch file is written. Once loaded, the touch runs and deploys beta's waiting .tmp
  const root = await shippedRoot(t, 'use.touch.file=true\n')
  const hold = path.join(root, 'release')
  await writeFile(path.join(root, 'config', 'alpha.properties'), `hold=${hold}\n`)
  const slow = await moduleSource(root, 'alpha-slow', {
    files: {
      'index.js': `module.exports = { async register (app, ctx) {
  const fs = require('fs')
  fs.writeFileSync(ctx.config.hold + '.held', '')
  while (!fs.existsSync(ctx.config.hold)) await new Promise((resolve) => setTimeout(resolve, 20))
  app.get('/', async () => ({ tag: 'alpha' }))
} }\n`,
    },
  })
  await packWithNyala(slow, path.join(modulesOf(root), 'alpha.zip'))
  await writeFile(path.join(modulesOf(root), 'beta.zip'), await readFile(await variant(root, 'beta', 'b1')))
  await place(await variant(root, 'beta', 'b2'), path.join(modulesOf(root), 'beta.zip.tmp'))
  const starting = startHost(t, root, [], { timeoutMs: 60_000 })
  await waitUntil(() => existsSync(`${hold}.held`), 'the host to be loading alpha')
  await writeFile(path.join(modulesOf(root), 'touch.txt'), '')
  await writeFile(hold, '')
  const host = await starting
  await waitUntil(async () => (await tagOf(host, '/beta')) === 'b2', 'the touch to deploy beta', 30_000)
})

test('.tmp and staged files left while the host was down are picked up once the modules have loaded', async (t) => {
  const root = await shippedRoot(t)
  await deploy(root, 'hello')
  await deploy(root, 'shop')
  await mkdir(stagingOf(root))
  await copyFile(await variant(root, 'hello', 'while-down'), path.join(stagingOf(root), 'hello.zip'))
  await copyFile(await variant(root, 'shop', 'while-down'), path.join(modulesOf(root), 'shop.zip.tmp'))
  // two files of one module left behind: the later one wins here too, deterministically
  const older = path.join(modulesOf(root), 'extra.zip.tmp')
  await copyFile(await variant(root, 'extra', 'older'), older)
  const past = new Date(Date.now() - 60_000)
  await utimes(older, past, past) // mtime says nothing: the rule reads the inode change time
  await sleep(20)
  await copyFile(await variant(root, 'extra', 'newer'), path.join(stagingOf(root), 'extra.zip'))

  const host = await startHost(t, root)
  await waitUntil(async () => (await tagOf(host, '/hello')) === 'while-down', 'staged file picked up')
  await waitUntil(async () => (await tagOf(host, '/shop')) === 'while-down', '.tmp picked up')
  await waitUntil(async () => (await tagOf(host, '/extra')) === 'newer', 'the later of two files')
  assert.ok(existsSync(`${older}.superseded`))
  const pickup = host.logs().find((r) => /picking up 4 file/.test(r.msg ?? ''))
  assert.ok(pickup, 'one record says what was picked up')
  assert.equal((await request(host.url('/hello'))).body.generation, 2)
})

test('a file on a deploy path that is not active gets one warning naming the file and the key', async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nauto.reload.modules=true\nauto.reload.monitoring.type=tmpfile\n',
  )
  await deploy(root, 'hello')
  const staging = stagingOf(root)
  await mkdir(staging)
  const again = await startHost(t, root)
  const bundle = await variant(root, 'hello', 'x')
  await place(bundle, path.join(staging, 'hello.zip'))
  await waitUntil(() => warningsOf(again, 'NYALA_ERR_DEPLOY_PATH_INACTIVE').length > 0, 'the warning')
  await place(bundle, path.join(staging, 'hello.zip')) // the same file again: no second warning
  // a bundle changed in place in modules/ while the default path is off is said too
  await place(await variant(root, 'hello', 'in-place'), path.join(modulesOf(root), 'hello.zip'))
  await waitUntil(
    () => warningsOf(again, 'NYALA_ERR_DEPLOY_PATH_INACTIVE').length >= 2,
    'the in-place warning',
  )
  await sleep(300)
  const warnings = warningsOf(again, 'NYALA_ERR_DEPLOY_PATH_INACTIVE')
  assert.equal(warnings.length, 2, JSON.stringify(warnings))
  const [staged, inPlace] = warnings
  assert.equal(staged.file, path.join(staging, 'hello.zip'))
  assert.equal(staged.key, 'auto.reload.monitoring.type')
  assert.equal(staged.value, 'tmpfile')
  assert.match(staged.msg, /add stagingDirectory to auto\.reload\.monitoring\.type/)
  assert.equal(inPlace.file, path.join(modulesOf(root), 'hello.zip'))
  assert.match(inPlace.msg, /default deploy path is not active/)
  assert.equal((await request(again.url('/hello'))).body.generation, 1, 'nothing was deployed')
  assert.ok(existsSync(path.join(staging, 'hello.zip')), 'nothing was moved or deleted')
})

test('with hot reload off, files waiting on the deploy paths are named at start-up', async (t) => {
  const root = await makeRoot(
    t,
    'port=0\nhost=127.0.0.1\nauto.reload.monitoring.type=tmpfile, stagingDirectory\n',
  )
  await deploy(root, 'hello')
  await copyFile(await variant(root, 'hello', 'x'), path.join(modulesOf(root), 'hello.zip.tmp'))
  const host = await startHost(t, root)
  await waitUntil(() => warningsOf(host, 'NYALA_ERR_DEPLOY_PATH_INACTIVE').length > 0, 'the warning')
  const [w] = warningsOf(host, 'NYALA_ERR_DEPLOY_PATH_INACTIVE')
  assert.equal(w.key, 'auto.reload.modules')
  assert.match(w.msg, /nyala reload hello/)
  assert.ok(host.logs().some((r) => /hot reload is off/.test(r.msg ?? '')))
  // the explicit reload is the way to deploy it: it takes the waiting .tmp
  const res = await request(host.admin('/modules/hello/reload'), { method: 'POST' })
  assert.equal(res.body.result, 'reloaded')
  assert.equal((await request(host.url('/hello'))).body.tag, 'x')
  assert.equal(existsSync(path.join(modulesOf(root), 'hello.zip.tmp')), false)
})
