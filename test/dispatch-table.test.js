import assert from 'node:assert/strict'
import test from 'node:test'
import { DispatchTable, prefixConflicts } from '../dist/http/dispatch-table.js'

const route = (module, prefix) => ({ module, prefix, generation: undefined, state: 'running' })

test('longest prefix wins, on segment boundaries only', () => {
  const table = new DispatchTable([
    route('api', '/api'),
    route('v2', '/api/v2'),
    route('billing', '/billing'),
  ])
  assert.equal(table.lookup('/api/v2/users?x=1').module, 'v2')
  assert.equal(table.lookup('/api/v2').module, 'v2')
  assert.equal(table.lookup('/api/v2/').module, 'v2')
  assert.equal(table.lookup('/api/v3').module, 'api')
  assert.equal(table.lookup('/api').module, 'api')
  assert.equal(table.lookup('/api?v2').module, 'api')
  assert.equal(table.lookup('/billingx'), undefined)
  assert.equal(table.lookup('/billing/invoices/1').module, 'billing')
  assert.equal(table.lookup('/'), undefined)
})

test('a root prefix catches what nothing else does', () => {
  const table = new DispatchTable([route('root', '/'), route('billing', '/billing')])
  assert.equal(table.lookup('/anything/else').module, 'root')
  assert.equal(table.lookup('/billing/x').module, 'billing')
  assert.equal(new DispatchTable([route('root', '/')]).lookup('/a/b/c').module, 'root')
})

test('a URL of thousands of segments still resolves', () => {
  const table = new DispatchTable([route('a', '/a'), route('ab', '/a/b')])
  assert.equal(table.lookup(`/a/b${'/x'.repeat(5000)}`).module, 'ab')
  assert.equal(table.lookup(`/a${'/'.repeat(5000)}`).module, 'a')
})

test('prefix conflicts are reported in pairs', () => {
  assert.deepEqual(
    prefixConflicts([
      { module: 'a', prefix: '/x' },
      { module: 'b', prefix: '/x' },
      { module: 'c', prefix: '/y' },
    ]),
    [{ module: 'a', other: 'b', prefix: '/x' }],
  )
})

test('percent-encoded paths match prefixes as Fastify matches routes', () => {
  const table = new DispatchTable([route('m', '/m000')])
  assert.equal(table.lookup('/%6D000/hello').module, 'm')
  assert.equal(table.lookup('/%E0%A4%A/x'), undefined)
})

test('replace makes a new table with some modules routed anew; the old table does not change', () => {
  const old = new DispatchTable([route('a', '/a'), route('deep', '/x/y/z'), route('b', '/b')])
  assert.equal(old.lookup('/x/y/z/1').module, 'deep')
  // deep moves to a shallower prefix, b is removed (no route given), c arrives
  const next = old.replace(['deep', 'b', 'c'], [route('deep', '/x'), route('c', '/c')])
  assert.equal(next.lookup('/x/y/z/1').module, 'deep')
  assert.equal(next.ownerOf('/x'), 'deep')
  assert.equal(next.ownerOf('/x/y/z'), undefined)
  assert.equal(next.lookup('/b/1'), undefined)
  assert.equal(next.lookup('/c/1').module, 'c')
  assert.equal(next.lookup('/a').module, 'a')
  assert.deepEqual(next.routes.map((r) => r.module).sort(), ['a', 'c', 'deep'])
  assert.equal(old.lookup('/b/1').module, 'b')
  assert.equal(old.ownerOf('/x/y/z'), 'deep')
  // a module replaced by an unrelated one on its prefix keeps nothing of the other's route
  const taken = next.replace(['a'], [route('a', '/c')])
  assert.equal(taken.lookup('/c').module, 'a')
  assert.equal(taken.replace(['c'], []).lookup('/c').module, 'a')
})

/** The rule lookup implements, written the slow, obvious way. */
function longestPrefix(prefixes, url) {
  let path = url.split('?')[0]
  try {
    path = decodeURIComponent(path)
  } catch {}
  let best
  for (const p of prefixes)
    if (
      p !== '/' &&
      (path === p || path.startsWith(`${p}/`)) &&
      (best === undefined || p.length > best.length)
    )
      best = p
  return best ?? (prefixes.includes('/') ? '/' : undefined)
}

test('lookup agrees with the plain longest-segment-prefix rule on random URLs, hash collisions included', () => {
  // '/Aa' and '/BB' hash alike in lookup's integer hash (31 * 'A' + 'a' === 31 * 'B' + 'B')
  const prefixes = ['/Aa', '/BB', '/Aa/BB', '/BB/Aa/x', '/a', '/a/b', '/ab', '/m000', '/x/y/z']
  for (const withRoot of [false, true]) {
    const all = withRoot ? [...prefixes, '/'] : prefixes
    const table = new DispatchTable(all.map((p) => route(`mod${p}`, p)))
    const pieces = ['Aa', 'BB', 'a', 'b', 'ab', 'x', 'y', 'z', 'm000', '%6D000', '%41a', '']
    let seed = 7
    const pick = (list) => {
      seed = (seed * 1103515245 + 12345) % 2147483648
      return list[seed % list.length]
    }
    for (let n = 0; n < 3000; n++) {
      let url = ''
      const depth = 1 + (n % 5)
      for (let d = 0; d < depth; d++) url += `/${pick(pieces)}`
      if (n % 3 === 0) url += `?q=/${pick(pieces)}`
      const expected = longestPrefix(all, url)
      assert.equal(table.lookup(url)?.prefix, expected, `lookup(${url})`)
    }
  }
})
