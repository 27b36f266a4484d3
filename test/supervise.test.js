import assert from 'node:assert/strict'
import test from 'node:test'
import { callAs } from '../dist/runtime/code-owner.js'
import { attribute, ownersByStack } from '../dist/supervise/attribution.js'
import { IntensityWindow } from '../dist/supervise/intensity.js'
import { decide } from '../dist/supervise/policy.js'

const owner = (module, generation, file = `/srv/modules/${module}.zip`) => ({ module, generation, file })

test('the intensity window admits max restarts within the window, then refuses until the oldest leaves it', () => {
  const w = new IntensityWindow(2, 1000)
  assert.equal(w.admit(0), true)
  assert.equal(w.admit(500), true)
  assert.equal(w.admit(900), false)
  assert.equal(w.count(999), 2)
  assert.equal(w.admit(1000), true, 'the restart at 0 left the window')
  assert.equal(new IntensityWindow(0, 1000).admit(0), false, 'max 0: never restarted')
})

test('the topmost module frame of a stack names the module; a file that only starts like another is not it', () => {
  const live = [owner('a', 1), owner('ab', 3, '/srv/modules/a.zip.d'), owner('b', 2)]
  const stack = [
    'Error: see /srv/modules/b.zip/index.js in the message',
    '    at inner (node:internal/timers:1:1)',
    '    at Timeout._onTimeout (/srv/modules/a.zip.d/lib/x.js:3:9)',
    '    at other (/srv/modules/a.zip/index.js:1:1)',
  ].join('\n')
  assert.deepEqual(ownersByStack(stack, live), [live[1]])
  assert.deepEqual(ownersByStack('Error: x\n    at f (node:events:1:1)', live), [])
  assert.deepEqual(ownersByStack('', live), [])
})

test('a frame named in the cache directory (a replaced prepareStackTrace): its module; modules sharing the directory are ambiguous', () => {
  const dir = `/srv/run/cache/${'c'.repeat(64)}`
  const a = { ...owner('a', 1), dir }
  const b = { ...owner('b', 4), dir: `/srv/run/cache/${'d'.repeat(64)}` }
  const stack = `Error: x\n    at f (${dir}/node_modules/sq/lib/db.js:3:9)\n    at g (/srv/modules/b.zip/index.js:1:1)`
  assert.deepEqual(ownersByStack(stack, [a, b]), [a])
  // a module with the same bytes under another bundle file: the same directory
  const twin = { ...owner('a2', 2), dir }
  assert.deepEqual(ownersByStack(stack, [a, b, twin]), [a, twin])
  const err = new Error('x')
  err.stack = stack
  assert.deepEqual(attribute(err, [a, b, twin]), { owner: twin, by: 'stack', ambiguous: true })
})

test('two live generations of the module: the newest, marked ambiguous; a ctx timer tag wins over the stack', () => {
  const live = [owner('a', 1), owner('a', 2)]
  const err = new Error('x')
  err.stack = 'Error: x\n    at f (/srv/modules/a.zip/index.js:1:1)'
  assert.deepEqual(attribute(err, live), { owner: live[1], by: 'stack', ambiguous: true })
  assert.throws(() =>
    callAs(live[0], () => {
      throw err
    }, []),
  )
  assert.deepEqual(attribute(err, live), { owner: live[0], by: 'timer', ambiguous: false })
  // a thrown primitive comes out as an Error that names the module and carries the value
  let thrown
  try {
    callAs(live[0], () => {
      throw 'text'
    }, [])
  } catch (e) {
    thrown = e
  }
  assert.equal(thrown.cause, 'text')
  assert.equal(attribute(thrown, []).owner, live[0])
  assert.equal(attribute('text', live), undefined)
})

test('a stack of a stopped generation only (a leftover timer of a removed module) is still the module', () => {
  const err = new Error('late')
  err.stack = 'Error: late\n    at Timeout._onTimeout (/srv/modules/gone.zip/index.js:2:3)'
  const stopped = [owner('gone', 1), owner('gone', 2)]
  assert.equal(attribute(err, [owner('a', 1)]), undefined)
  assert.deepEqual(attribute(err, [owner('a', 1)], stopped), {
    owner: stopped[1],
    by: 'stack',
    ambiguous: false,
  })
  // a live generation of the module wins over stopped ones
  const live = [owner('gone', 3)]
  assert.deepEqual(attribute(err, live, stopped), { owner: live[0], by: 'stack', ambiguous: false })
})

test('the policy: log always logs; old or ambiguous generations and repeated crashes are left alone; restart until the window is full', () => {
  const facts = { policy: 'restart', current: true, ambiguous: false, handling: false, admit: () => true }
  assert.equal(decide(facts).action, 'restart')
  assert.deepEqual(decide({ ...facts, admit: () => false }), { action: 'fail', loop: true })
  assert.deepEqual(decide({ ...facts, policy: 'fail' }), { action: 'fail', loop: false })
  assert.equal(decide({ ...facts, policy: 'log', current: false }).action, 'log')
  for (const other of [{ current: false }, { ambiguous: true }, { handling: true }]) {
    assert.equal(decide({ ...facts, ...other }).action, 'none')
  }
})
