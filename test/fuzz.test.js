// A short run of the fuzzer (npm run fuzz, fuzz/run.js): a few hundred mutated bundles,
// admin API requests and upgrade-socket messages against the host's code and real
// processes; it exits 1 on any finding. Then the fuzzer's own oracles, shown to catch
// what they are there to catch, so a run that finds nothing means something.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import path from 'node:path'
import test from 'node:test'
import { judge } from '../fuzz/admin-target.js'
import { problemsOf } from '../fuzz/bundle-oracle.js'
import { writeZip } from '../fuzz/zip.js'
import { projectRoot } from './helpers.js'

test('a short fuzz run finds nothing: every case refused with a code or valid, the hosts up', {
  timeout: 240_000,
}, async () => {
  const child = spawn(
    process.execPath,
    [
      path.join(projectRoot, 'fuzz', 'run.js'),
      '--seed',
      '14',
      '--bundle-count',
      '300',
      '--admin-count',
      '200',
      '--upgrade-count',
      '150',
    ],
    { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  child.stdout.on('data', (d) => {
    out += d
  })
  child.stderr.on('data', (d) => {
    out += d
  })
  const timer = setTimeout(() => child.kill('SIGKILL'), 200_000)
  const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal)))
  clearTimeout(timer)
  assert.equal(code, 0, out)
  assert.match(out, /== bundle: 3\d\d cases .* 0 failure\(s\)/)
  assert.match(out, /== admin: 200 cases .* 0 failure\(s\)/)
  assert.match(out, /== upgrade: 1\d\d cases .* 0 failure\(s\)/)
  // the three ways in were taken: a running host for bundles, the admin listener, the upgrade socket
  assert.match(out, /\(host\)/)
  assert.match(out, /NYALA_ERR_ADMIN_/)
  assert.match(out, /nak, logged, closed/)
  assert.match(out, /\(running host\) .* refused: NYALA_ERR_UPGRADE_/)
})

test('the bundle oracle flags an accepted bundle that differs from its zip', () => {
  const limits = { maxBytes: 1 << 20, maxEntries: 10, maxNameBytes: 100 }
  const data = writeZip([
    { name: 'module.properties', data: Buffer.from('version=1.0.0\n') },
    { name: 'index.js', data: Buffer.from('x') },
  ])
  const files = (content) => ({
    files: new Map([
      ['module.properties', Buffer.from('version=1.0.0\n')],
      ['index.js', content],
    ]),
  })
  assert.deepEqual(problemsOf(files(Buffer.from('x')), data, limits), [])
  assert.match(problemsOf(files(Buffer.from('y')), data, limits).join(), /does not match its CRC-32/)
  const twice = writeZip([
    { name: 'index.js', data: Buffer.from('x') },
    { name: './index.js', data: Buffer.from('x') },
  ])
  assert.match(
    problemsOf({ files: new Map([['index.js', Buffer.from('x')]]) }, twice, limits).join(),
    /in the zip twice/,
  )
  const link = writeZip([{ name: 'index.js', data: Buffer.from('x'), mode: 0o120777 }])
  assert.match(
    problemsOf({ files: new Map([['index.js', Buffer.from('x')]]) }, link, limits).join(),
    /symbolic link/,
  )
})

test('the admin oracle flags 5xx, uncoded 4xx, silence and a hang', () => {
  const answer = (text, how = 'end') => ({ how, data: Buffer.from(text) })
  const c = { cls: 'GET /modules', method: 'GET' }
  const coded = '{"statusCode":404,"code":"NYALA_ERR_ADMIN_NOT_FOUND"}'
  assert.equal(judge(c, answer(`HTTP/1.1 404 Not Found\r\n\r\n${coded}`)).failure, undefined)
  assert.equal(judge(c, answer('HTTP/1.1 500 Error\r\n\r\n{}')).failure, '5xx')
  assert.equal(judge(c, answer('HTTP/1.1 400 Bad Request\r\n\r\n{"statusCode":400}')).failure, 'uncoded')
  assert.equal(judge(c, answer('HTTP/1.1 400 Bad Request\r\n\r\n')).failure, 'not-json')
  const failed = '{"result":"failed","error":{"code":"NYALA_ERR_BUNDLE_NOT_ZIP"}}'
  assert.equal(judge(c, answer(`HTTP/1.1 422 Unprocessable Entity\r\n\r\n${failed}`)).failure, undefined)
  assert.equal(
    judge(c, answer('HTTP/1.1 422 Unprocessable Entity\r\n\r\n{"result":"failed"}')).failure,
    'uncoded',
  )
  assert.equal(judge(c, answer('')).failure, 'no-answer')
  assert.equal(judge(c, answer('', 'timeout')).failure, 'hang')
  assert.equal(judge({ ...c, method: 'HEAD' }, answer('HTTP/1.1 404 Not Found\r\n\r\n')).failure, undefined)
})
