// The running-code slots the watchdog reads (src/runtime/running-code.ts): marks set while the
// marked code runs and restored after it, even when it throws; names replayed to a reader that
// comes later, and dropped when a generation is forgotten.
import assert from 'node:assert/strict'
import test from 'node:test'
import {
  codeId,
  forgetCode,
  part,
  readNames,
  routeId,
  runAs,
  runningSlots,
  slot,
} from '../dist/runtime/running-code.js'
import { beatIntervalOf } from '../dist/supervise/watchdog.js'

test('runAs marks the code while it runs, restores the outer mark after, also when it throws', () => {
  const outer = codeId('outer', 1)
  const inner = codeId('inner', 1)
  const seen = []
  runAs(outer, part.register, () => {
    seen.push([runningSlots[slot.code], runningSlots[slot.route]])
    assert.throws(() =>
      runAs(inner, part.timer, () => {
        seen.push([runningSlots[slot.code], runningSlots[slot.route]])
        throw new Error('x')
      }),
    )
    seen.push([runningSlots[slot.code], runningSlots[slot.route]])
  })
  seen.push([runningSlots[slot.code], runningSlots[slot.route]])
  assert.deepEqual(seen, [
    [outer, part.register],
    [inner, part.timer],
    [outer, part.register],
    [0, 0],
  ])
  forgetCode(outer)
  forgetCode(inner)
})

test('a reader gets the live names first, then each change; forgotten ids are gone', () => {
  const a = codeId('a', 3)
  const route = routeId(a, 'GET /a/x')
  const b = codeId('b', 1)
  forgetCode(b)
  const changes = []
  readNames((change) => changes.push(change))
  try {
    const live = changes.filter((c) => c.id === a || c.id === route || c.id === b)
    assert.deepEqual(live, [
      { kind: 'code', id: a, module: 'a', generation: 3 },
      { kind: 'route', id: route, code: a, route: 'GET /a/x' },
    ])
    changes.length = 0
    forgetCode(a)
    forgetCode(a)
    assert.deepEqual(changes, [{ kind: 'forget', id: a }], 'forgotten once')
  } finally {
    readNames(undefined)
  }
})

test('the heartbeat interval is an eighth of the stall time, from 10 to 250 ms', () => {
  assert.equal(beatIntervalOf(2000), 250)
  assert.equal(beatIntervalOf(60_000), 250)
  assert.equal(beatIntervalOf(800), 100)
  assert.equal(beatIntervalOf(100), 12)
})
