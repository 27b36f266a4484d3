import assert from 'node:assert/strict'
import test from 'node:test'
import { CrashChain, crashChainVariable } from '../dist/upgrade/crash-chain.js'
import { decideHostCrash } from '../dist/upgrade/host-crash-policy.js'

test('the chain of host-crash replacements travels in the environment and is bounded within its window', () => {
  const env = { [crashChainVariable]: '1000,2000' }
  const chain = new CrashChain(3, 10_000, env, 5000)
  assert.equal(env[crashChainVariable], undefined, 'read once and removed, so module code never sees it')
  assert.equal(chain.count(5000), 2)
  // the third replacement is admitted, and the successor inherits all three times
  assert.deepEqual(chain.admit(5000), { [crashChainVariable]: '1000,2000,5000' })
  assert.equal(chain.admit(6000), undefined, 'a fourth within the window is a crash loop')
  // the window slides: old replacements no longer count
  assert.deepEqual(chain.admit(11_500), { [crashChainVariable]: '2000,5000,11500' })
})

test('a fresh start (no variable) begins a new chain; max 0 never replaces', () => {
  assert.equal(new CrashChain(3, 60_000, {}, 1000).count(1000), 0)
  assert.equal(new CrashChain(0, 60_000, {}, 1000).admit(1000), undefined)
})

test('values that are not past times are ignored, not trusted', () => {
  const env = { [crashChainVariable]: 'x,-5,,9999999,3000,1e400' }
  const chain = new CrashChain(5, 60_000, env, 4000)
  assert.equal(chain.count(4000), 1, 'only 3000 counts: garbage and a future time are dropped')
})

test('what a host crash does, by host.crash.action, the process phase and the chain', () => {
  const env = { [crashChainVariable]: '1' }
  let admitted = 0
  const facts = (more) => ({
    action: 'upgrade',
    canStartSuccessor: true,
    phase: 'serving',
    admit: () => {
      admitted++
      return env
    },
    ...more,
  })
  assert.deepEqual(decideHostCrash(facts()), { action: 'upgrade', env })
  assert.equal(admitted, 1)
  const exits = [
    [{ action: 'exit' }, 'host.crash.action=exit'],
    [{ canStartSuccessor: false }, 'no command to start a successor with'],
    [{ phase: 'starting' }, 'not serving yet: no listeners to hand over'],
    [{ phase: 'stopping' }, 'stopping already'],
  ]
  for (const [more, why] of exits) {
    assert.deepEqual(decideHostCrash(facts(more)), { action: 'exit', why, loop: false })
  }
  assert.deepEqual(decideHostCrash(facts({ phase: 'handing-over' })), { action: 'handover under way' })
  assert.equal(admitted, 1, 'only a replacement that is started counts in the chain')
  assert.deepEqual(decideHostCrash(facts({ admit: () => undefined })), {
    action: 'exit',
    why: 'host.crash.max.upgrades reached',
    loop: true,
  })
})
