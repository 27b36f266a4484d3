// Crash-safe files (issue 14 part 5): a host killed with SIGKILL at any instant of a reload leaves
// modules/ so that the next start serves every module from a complete bundle, old or new, and a
// .tmp or staged file is either still in place or committed. Killed at each step by the test-only
// fault points (NYALA_FAULT_KILL_AT, src/fault-point.ts) and at seeded random instants.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import test, { after } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  makeRoot,
  modulesOf,
  placeByRename as place,
  request,
  runCli,
  startHost,
  taggedBundle as variant,
  waitUntil,
} from './helpers.js'

const stagingOf = (root) => path.join(root, 'staging')

/** The five bundles of the scenario, packed once for the whole file (packing is most of a round's set-up). */
let packed
const packedDirs = []
after(() => Promise.all(packedDirs.map((d) => rm(d, { recursive: true, force: true }))))
function bundles() {
  packed ??= (async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'nyala-crash-bundles-'))
    packedDirs.push(dir)
    return {
      alphaOld: await variant(dir, 'alpha', 'old'),
      betaOld: await variant(dir, 'beta', 'old'),
      gammaOld: await variant(dir, 'gamma', 'old', { 'depends-on': 'alpha' }),
      alphaNew: await variant(dir, 'alpha', 'new'),
      betaNew: await variant(dir, 'beta', 'new'),
    }
  })()
  return packed
}

/**
 * Three modules: alpha (updated by `alpha.zip.tmp`), beta (`beta-1.0.zip`, updated by a staged
 * `beta-2.0.zip`: the commit changes its file name) and gamma, which depends on alpha and is
 * rebuilt with it. Returns the paths and the new bundles' bytes.
 */
async function scenario(t, properties) {
  const root = await makeRoot(t, `port=0\nhost=127.0.0.1\nauto.reload.modules=true\n${properties}`)
  const modules = modulesOf(root)
  const b = await bundles()
  await mkdir(stagingOf(root))
  await copyFile(b.alphaOld, path.join(modules, 'alpha.zip'))
  await copyFile(b.betaOld, path.join(modules, 'beta-1.0.zip'))
  await copyFile(b.gammaOld, path.join(modules, 'gamma.zip'))
  return {
    root,
    modules,
    deploys: [
      {
        module: 'alpha',
        bundle: b.alphaNew,
        bytes: await readFile(b.alphaNew),
        source: path.join(modules, 'alpha.zip.tmp'),
        target: path.join(modules, 'alpha.zip'),
      },
      {
        module: 'beta',
        bundle: b.betaNew,
        bytes: await readFile(b.betaNew),
        source: path.join(stagingOf(root), 'beta-2.0.zip'),
        target: path.join(modules, 'beta-2.0.zip'),
      },
    ],
  }
}

async function dropAll(s) {
  for (const d of s.deploys) await place(d.bundle, d.source)
}

const sameBytes = async (file, bytes) => existsSync(file) && (await readFile(file)).equals(bytes)

/** Resolves with { code, signal } once the child has exited (at once if it already has). */
function exitOf(child, timeoutMs = 60_000) {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`host ${child.pid} still runs after ${timeoutMs} ms`)),
      timeoutMs,
    )
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal })
    })
  })
}

/** The bundle files of each module in modules/ (`beta-1.0.zip`, `beta-2.0.zip`, ...). */
async function bundlesIn(modules) {
  const names = await readdir(modules)
  const of = (m) => names.filter((n) => new RegExp(`^${m}(-[0-9.]+)?\\.zip$`).test(n))
  return { names, of }
}

/**
 * What a kill must leave, checked on the files before the next start: each module still has a
 * bundle in modules/ (two, when a kill cut a renaming commit in half: start-up recovery settles
 * that), and each deployed file is still in place or committed.
 */
async function checkFiles(s, when) {
  const { names, of } = await bundlesIn(s.modules)
  for (const m of ['alpha', 'beta', 'gamma'])
    assert.ok(of(m).length > 0, `${when}: ${m} has a bundle in modules/ (${names.join(' ')})`)
  const states = []
  for (const d of s.deploys) {
    const inPlace = await sameBytes(d.source, d.bytes)
    const committed = await sameBytes(d.target, d.bytes)
    assert.ok(inPlace || committed, `${when}: ${path.basename(d.source)} is still in place or committed`)
    states.push(`${d.module}: ${committed ? 'committed' : 'in place'}`)
  }
  return states.join(', ')
}

const tagOf = async (host, m) => {
  const res = await request(host.url(`/${m}`))
  return res.status === 200 ? res.body.tag : `status ${res.status}`
}

/** The next start serves every module (old or new), then the deploys all arrive. */
async function restartAndCheck(t, s, when, touch) {
  const host = await startHost(t, s.root)
  const { names, of } = await bundlesIn(s.modules)
  for (const m of ['alpha', 'beta', 'gamma']) {
    assert.match(await tagOf(host, m), /^(old|new)$/, `${when}: ${m} answers after the restart`)
    assert.equal(of(m).length, 1, `${when}: ${m} has one bundle after the restart (${names.join(' ')})`)
  }
  // nothing the killed run wrote half is left for later: no temporary file, no commit intent
  // (those of the new host, busy picking the deploys up, name its pid)
  const killedRuns = (n) =>
    (n.endsWith('.part') || n.startsWith('.nyala-commit')) && !n.includes(`.${host.child.pid}.`)
  for (const dir of [s.modules, stagingOf(s.root)]) {
    const left = (await readdir(dir)).filter(killedRuns)
    assert.deepEqual(left, [], `${when}: leftovers in ${dir}`)
  }
  if (touch) await writeFile(path.join(s.modules, 'touch.txt'), '')
  await waitUntil(
    async () => (await tagOf(host, 'alpha')) === 'new' && (await tagOf(host, 'beta')) === 'new',
    `${when}: the deploys served after the restart`,
    30_000,
  )
  assert.equal(await tagOf(host, 'gamma'), 'old')
  for (const d of s.deploys) {
    await waitUntil(() => !existsSync(d.source), `${when}: ${d.source} moved into modules/`, 10_000)
    assert.ok(await sameBytes(d.target, d.bytes), `${when}: ${d.target} holds the new bundle`)
  }
  assert.ok(
    !existsSync(path.join(s.modules, 'beta-1.0.zip')),
    `${when}: the renamed bundle's old name is gone`,
  )
  await host.stop()
}

// every fault point a reload of the scenario passes; `step:module` is that module's step
const steps = [
  'generation-start',
  'generation-started',
  'commit-previous',
  'place-written', // the commit intent's own temporary file, written before beta's rename
  'commit-intent',
  'commit-before-rename',
  'commit-renamed',
  'commit-old-removed',
  'commit-between',
  'commit-done',
  'commit-flushed',
  'drain',
  // the steps of the commit that changes beta's file name (alpha's may come first)
  'commit-previous:beta',
  'commit-before-rename:beta',
  'commit-renamed:beta',
  'commit-synced:beta',
]

// the touch file makes both deploys one transaction, so the kill between two commits is reached;
// the .tmp and staged files wait for it at the next start too, so their state is seen first
const touchMode = 'auto.reload.monitoring.type=tmpfile, stagingDirectory\nuse.touch.file=true\n'

for (const step of steps) {
  test(`killed at ${step}: the next start serves every module, no deployed file is lost`, {
    timeout: 180_000,
  }, async (t) => {
    const s = await scenario(t, touchMode)
    const host = await startHost(t, s.root, [], { env: { NYALA_FAULT_KILL_AT: step } })
    await dropAll(s)
    await writeFile(path.join(s.modules, 'touch.txt'), 'alpha beta\n')
    const exit = await exitOf(host.child)
    assert.equal(exit.signal, 'SIGKILL', `the host reached ${step} and killed itself\n${host.stdout()}`)
    await checkFiles(s, step)
    await restartAndCheck(t, s, step, true)
  })
}

test('a deploy killed while writing its temporary file: the next start removes the half-written file', {
  timeout: 180_000,
}, async (t) => {
  const s = await scenario(t, touchMode)
  const res = await runCli(['deploy', s.deploys[1].bundle, '--root', s.root, '--no-wait'], {
    env: { NYALA_FAULT_KILL_AT: 'place-written' },
  })
  assert.equal(res.code, null, `nyala deploy was killed, not exited: ${res.stdout}${res.stderr}`)
  const partials = (await readdir(stagingOf(s.root))).filter((n) => n.endsWith('.part'))
  assert.equal(partials.length, 1, 'the killed deploy left its temporary file')
  const host = await startHost(t, s.root)
  assert.deepEqual(
    (await readdir(stagingOf(s.root))).filter((n) => n.endsWith('.part')),
    [],
    'removed at start-up',
  )
  const rec = host.logs().find((r) => Array.isArray(r.partials))
  assert.deepEqual(rec?.partials, [path.join(stagingOf(s.root), partials[0])])
  assert.equal(await tagOf(host, 'beta'), 'old')
  await host.stop()
})

/** A small seeded generator (mulberry32): the same instants on every run. */
function seeded(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

test('killed at random instants of a reload: every restart serves every module, no file is lost', {
  timeout: 600_000,
}, async (t) => {
  const seed = Number(process.env.NYALA_CRASH_SEED ?? 14)
  const random = seeded(seed)
  const properties = 'auto.reload.monitoring.type=tmpfile, stagingDirectory\n'
  // how long the reloads take here, unkilled: the instants are drawn over that span (and a bit past)
  const probe = await scenario(t, properties)
  const first = await startHost(t, probe.root)
  const t0 = performance.now()
  await dropAll(probe)
  await waitUntil(
    async () => (await tagOf(first, 'alpha')) === 'new' && (await tagOf(first, 'beta')) === 'new',
    'the unkilled reloads',
    30_000,
  )
  const spanMs = performance.now() - t0
  await first.stop()
  t.diagnostic(`seed ${seed}: both reloads served ${Math.round(spanMs)} ms after the drop`)
  const rounds = 6
  for (let round = 1; round <= rounds; round++) {
    const delayMs = Math.round(random() * spanMs * 1.2)
    const when = `seed ${seed} round ${round} (kill after ${delayMs} ms)`
    const s = await scenario(t, properties)
    const host = await startHost(t, s.root)
    await dropAll(s)
    await sleep(delayMs)
    host.child.kill('SIGKILL')
    const exit = await exitOf(host.child)
    assert.equal(exit.signal, 'SIGKILL')
    const states = await checkFiles(s, when)
    t.diagnostic(`${when}: ${states}`)
    await restartAndCheck(t, s, when, false)
  }
})
