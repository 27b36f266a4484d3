import assert from 'node:assert/strict'
import test from 'node:test'
import { DependentsIndex } from '../dist/graph/dependents-index.js'
import { affectedBy, dependencyOrder, planGraph } from '../dist/graph/module-graph.js'

const node = (name, dependsOn = [], optionalDependsOn = []) => ({ name, dependsOn, optionalDependsOn })

test('dependencies come before dependents', () => {
  const nodes = [
    node('billing', ['core', 'customers']),
    node('customers', ['core']),
    node('core'),
    node('hello'),
  ]
  const order = dependencyOrder(nodes)
  assert.deepEqual(order, ['core', 'customers', 'billing', 'hello'])
  const plan = planGraph(nodes)
  assert.equal(plan.failures.size, 0)
})

test('optional dependencies order the start when present and are ignored when absent', () => {
  const plan = planGraph([node('a', [], ['audit']), node('audit'), node('b', [], ['absent'])])
  assert.ok(plan.order.indexOf('audit') < plan.order.indexOf('a'))
  assert.equal(plan.failures.size, 0)
})

test('a cycle fails its members with the cycle named, and their dependents', () => {
  const plan = planGraph([node('a', ['b']), node('b', ['c']), node('c', ['a']), node('d', ['a']), node('e')])
  for (const m of ['a', 'b', 'c']) {
    assert.equal(plan.failures.get(m).code, 'NYALA_ERR_DEPENDENCY_CYCLE')
    assert.match(plan.failures.get(m).message, /a -> b -> c -> a/)
  }
  assert.equal(plan.failures.get('d').code, 'NYALA_ERR_DEPENDENCY_FAILED')
  assert.equal(plan.failures.has('e'), false)
})

test('a self-dependency is a cycle', () => {
  const plan = planGraph([node('a', ['a'])])
  assert.equal(plan.failures.get('a').code, 'NYALA_ERR_DEPENDENCY_CYCLE')
})

test('a missing required dependency fails the module and its dependents only', () => {
  const plan = planGraph([node('billing', ['customers']), node('customers', ['ghost']), node('core')])
  assert.equal(plan.failures.get('customers').code, 'NYALA_ERR_DEPENDENCY_MISSING')
  assert.match(plan.failures.get('customers').message, /"ghost"/)
  assert.equal(plan.failures.get('billing').code, 'NYALA_ERR_DEPENDENCY_FAILED')
  assert.equal(plan.failures.has('core'), false)
})

test('the affected set is the module and its transitive dependents, in dependency order', () => {
  const nodes = [
    node('core'),
    node('customers', ['core']),
    node('billing', ['customers']),
    node('reports', [], ['billing']),
    node('hello'),
  ]
  assert.deepEqual(affectedBy(nodes, ['core']), ['core', 'customers', 'billing', 'reports'])
  assert.deepEqual(affectedBy(nodes, ['billing']), ['billing', 'reports'])
  assert.deepEqual(affectedBy(nodes, ['hello']), ['hello'])
  assert.deepEqual(affectedBy(nodes, ['new-module']), ['new-module'])
})

test('order is deterministic and scales to a long chain', () => {
  const nodes = Array.from({ length: 2000 }, (_, i) => node(`m${i}`, i ? [`m${i - 1}`] : []))
  const order = dependencyOrder([...nodes].reverse())
  assert.equal(order[0], 'm0')
  assert.equal(order[1999], 'm1999')
})

test('the dependents index follows modules as their edges change and finds the same affected set', () => {
  const index = new DependentsIndex()
  for (const n of [node('core'), node('customers', ['core']), node('billing', ['customers'], ['core'])])
    index.set(n)
  index.set(node('reports', [], ['billing']))
  index.set(node('waiting', ['not-yet']))
  assert.deepEqual([...index.closure(['core'])].sort(), ['billing', 'core', 'customers', 'reports'])
  assert.deepEqual([...index.closure(['not-yet'])].sort(), ['not-yet', 'waiting'])
  // billing drops customers, keeps core (optional): customers no longer reaches it
  index.set(node('billing', [], ['core']))
  assert.deepEqual([...index.closure(['customers'])].sort(), ['customers'])
  assert.deepEqual([...index.closure(['core'])].sort(), ['billing', 'core', 'customers', 'reports'])
  index.delete('reports')
  assert.deepEqual([...index.closure(['billing'])], ['billing'])
})

test('a plan of part of the graph takes dependencies outside it as present, and finds missing ones', () => {
  const outside = new Set(['core'])
  const plan = planGraph([node('customers', ['core']), node('billing', ['customers', 'ghost'])], (n) =>
    outside.has(n),
  )
  assert.deepEqual(plan.order, ['customers', 'billing'])
  assert.equal(plan.failures.has('customers'), false)
  assert.equal(plan.failures.get('billing').code, 'NYALA_ERR_DEPENDENCY_MISSING')
  assert.match(plan.failures.get('billing').message, /"ghost"/)
  assert.equal(
    planGraph([node('customers', ['core'])]).failures.get('customers').code,
    'NYALA_ERR_DEPENDENCY_MISSING',
  )
})
