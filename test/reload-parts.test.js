// Unit tests of the reload parts: selection, candidate mapping, locks, the
// request gate and the file commit.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadHostOptions } from '../dist/config/host-options.js'
import { commitChange } from '../dist/reload/commit-files.js'
import { ModuleLocks } from '../dist/reload/module-locks.js'
import { RequestGate } from '../dist/reload/request-gate.js'
import { ReloadSelection } from '../dist/reload/selection.js'
import { candidateFor, classify } from '../dist/reload/sources.js'
import { makeRoot } from './helpers.js'

const manifest = (fields = {}) => ({ reloadable: true, reloadableDeclared: false, ...fields })

test('selection: reload.all, reload.modules wildcards, reloadable, directories, unregister and register', () => {
  const all = new ReloadSelection({ all: true, modules: [], directories: [], debug: false })
  assert.equal(all.decide('billing', '/m/billing.zip', manifest()).reload, true)
  assert.equal(all.decide('billing', '/m/billing.zip', manifest({ reloadable: false })).reload, false)
  all.unregister('billing')
  assert.deepEqual(all.decide('billing', '/m/billing.zip', manifest()), {
    reload: false,
    reason: 'unregistered from reloading (admin API)',
  })
  all.register('billing')
  assert.equal(all.decide('billing', '/m/billing.zip', manifest()).reload, true)

  const some = new ReloadSelection({
    all: false,
    modules: ['billing', 'core.*'],
    directories: [],
    debug: false,
  })
  assert.equal(some.decide('billing', '/m/billing.zip', manifest()).reload, true)
  assert.equal(some.decide('core.api', '/m/core.api.zip', manifest()).reload, true)
  assert.equal(some.decide('core', '/m/core.zip', manifest()).reload, false, '"core.*" needs the dot')
  assert.equal(some.decide('billingx', '/m/billingx.zip', manifest()).reload, false, 'whole names only')
  assert.equal(
    some.decide('audit', '/m/audit.zip', manifest({ reloadableDeclared: true })).reload,
    true,
    'reloadable=true written in the manifest selects the module',
  )
  some.register('audit2')
  assert.equal(some.decide('audit2', '/m/audit2.zip', manifest()).reload, true)

  const dirs = new ReloadSelection({ all: true, modules: [], directories: ['/srv/m/hot'], debug: false })
  assert.equal(dirs.decide('a', '/srv/m/hot/a.zip', manifest()).reload, true)
  assert.equal(dirs.decide('a', '/srv/m/hotter/a.zip', manifest()).reload, false, 'directory boundaries')
})

test('candidates: each monitoring type maps its files to a module, a source and a target', async (t) => {
  const root = await makeRoot(t, null)
  const opts = loadHostOptions({ root }, root).options
  const m = path.join(root, 'modules')
  const none = new Map()

  assert.deepEqual(candidateFor('default', path.join(m, 'billing-1.2.0.jar'), opts, none), {
    name: 'billing',
    source: path.join(m, 'billing-1.2.0.jar'),
    target: path.join(m, 'billing-1.2.0.jar'),
    directory: false,
    type: 'default',
  })
  assert.equal(
    candidateFor('default', path.join(m, 'shop', 'lib', 'x.js'), opts, none).source,
    path.join(m, 'shop'),
  )
  assert.equal(candidateFor('default', path.join(m, 'shop', 'lib', 'x.js'), opts, none).directory, true)
  assert.equal(candidateFor('default', path.join(m, 'billing.jar.tmp'), opts, none), undefined)
  assert.equal(candidateFor('default', path.join(m, '.billing.jar.123.partial'), opts, none), undefined)
  assert.equal(candidateFor('default', path.join(m, 'touch.txt'), opts, none), undefined)

  assert.deepEqual(candidateFor('tmpfile', path.join(m, 'billing.jar.tmp'), opts, none), {
    name: 'billing',
    source: path.join(m, 'billing.jar.tmp'),
    target: path.join(m, 'billing.jar'),
    directory: false,
    type: 'tmpfile',
  })
  const records = new Map([['billing', { file: path.join(m, 'billing-1.0.jar') }]])
  assert.equal(
    candidateFor('tmpfile', path.join(m, 'billing.tmp'), opts, records).target,
    path.join(m, 'billing-1.0.jar'),
    'name.tmp replaces whatever bundle file the module has',
  )
  assert.equal(
    candidateFor('tmpfile', path.join(m, 'fresh.tmp'), opts, none).target,
    path.join(m, 'fresh.zip'),
  )
  assert.equal(candidateFor('tmpfile', path.join(m, 'billing.jar'), opts, none), undefined)

  const s = path.join(root, 'staging')
  assert.deepEqual(candidateFor('stagingDirectory', path.join(s, 'billing-2.0.0.zip'), opts, none), {
    name: 'billing',
    source: path.join(s, 'billing-2.0.0.zip'),
    target: path.join(m, 'billing-2.0.0.zip'),
    directory: false,
    type: 'stagingDirectory',
  })
  assert.equal(candidateFor('stagingDirectory', path.join(s, 'notes.txt'), opts, none), undefined)
  assert.equal(candidateFor('stagingDirectory', path.join(m, 'billing.zip'), opts, none), undefined)

  // the three deploy paths never claim one file twice: classify names the one it belongs to
  assert.equal(classify(path.join(m, 'billing.jar.tmp'), opts, none).type, 'tmpfile')
  assert.equal(classify(path.join(s, 'billing.zip'), opts, none).type, 'stagingDirectory')
  assert.equal(classify(path.join(m, 'billing.zip'), opts, none).type, 'default')
  assert.equal(classify(path.join(m, 'billing.zip.superseded'), opts, none), undefined)
  assert.equal(classify(path.join(m, 'touch.txt'), opts, none), undefined)
})

test('locks: one module reloads at a time, unrelated modules side by side, no deadlock in any order', async () => {
  const locks = new ModuleLocks()
  const order = []
  const hold = async (names, label, ms) => {
    const release = await locks.acquire(names)
    order.push(`${label}+`)
    await sleep(ms)
    order.push(`${label}-`)
    release()
  }
  await Promise.all([hold(['a', 'b'], 'x', 30), hold(['b', 'a'], 'y', 10), hold(['c'], 'z', 5)])
  // x and y share a and b: one finishes before the other starts; z ran inside x
  const xi = order.indexOf('x-')
  const yi = order.indexOf('y+')
  assert.ok(xi < yi || order.indexOf('y-') < order.indexOf('x+'), order.join(' '))
  assert.ok(order.indexOf('z+') < order.indexOf('x-'), `z did not wait for x: ${order.join(' ')}`)
  assert.equal(locks.isLocked('a'), false)
})

test('request gate: waiters go on when it opens, or give up after their timeout', async () => {
  const gate = new RequestGate()
  const late = gate.wait(20)
  const waiting = gate.wait(5_000)
  assert.equal(await late, false)
  gate.open()
  assert.equal(await waiting, true)
  assert.equal(await gate.wait(1), true, 'an open gate does not wait')
})

test('commit: the source replaces the target, the old bundle is kept as .previous', async (t) => {
  const root = await makeRoot(t, null)
  const target = path.join(root, 'modules', 'a.zip')
  const source = `${target}.tmp`
  await writeFile(target, 'old')
  await writeFile(source, 'new')
  const out = await commitChange(
    { name: 'a', kind: 'update', source, target, data: Buffer.from('new') },
    target,
  )
  assert.equal(out.newerSource, false)
  assert.equal(await readFile(target, 'utf8'), 'new')
  assert.equal(await readFile(`${target}.previous`, 'utf8'), 'old')
  assert.equal(existsSync(source), false)
})

test('commit: a source replaced while its reload ran stays for the next reload; the loaded bytes are committed', async (t) => {
  const root = await makeRoot(t, null)
  const target = path.join(root, 'modules', 'a.zip')
  const source = `${target}.tmp`
  await writeFile(target, 'old')
  await writeFile(source, 'newer')
  const out = await commitChange(
    { name: 'a', kind: 'update', source, target, data: Buffer.from('loaded') },
    target,
  )
  assert.equal(out.newerSource, true)
  assert.equal(await readFile(target, 'utf8'), 'loaded', 'exactly what was started is committed')
  assert.equal(await readFile(source, 'utf8'), 'newer', 'the newer content is not lost')
})
