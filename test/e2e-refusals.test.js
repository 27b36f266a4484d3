// End to end: bad bundles, bad modules and bad configuration are refused with
// a coded record naming the bundle or module, while the host keeps serving a
// healthy module deployed beside them. Everything runs the real CLI.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import test from 'node:test'
import JSZip from 'jszip'
import {
  deploy,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  packWithZip,
  request,
  runCli,
  startHost,
  writeFiles,
} from './helpers.js'

/** Writes raw files under `<root>/src/<dir>` and packs them with `zip -r` (no validation). */
async function deployRaw(root, dir, files, file = `${dir}.zip`) {
  const src = await writeFiles(path.join(root, 'src', dir), files)
  return packWithZip(src, path.join(modulesOf(root), file))
}

const healthy = (root) => deploy(root, 'healthy')

async function assertHealthy(host) {
  const res = await request(host.url('/healthy'))
  assert.equal(res.status, 200)
  assert.equal(res.body.module, 'healthy')
}

/** The one record carrying `code` for `module` (by the `module` field). */
function recordOf(host, code, module) {
  const found = host.logs().filter((r) => r.code === code && r.module === module)
  assert.equal(found.length, 1, `one ${code} record for ${module}; logs:\n${host.stdout()}`)
  return found[0]
}

/** Stops with SIGTERM and checks the exit code. */
async function stopOk(host) {
  const { code } = await host.stop()
  assert.equal(code, 0, host.stderr())
}

/** A JSZip bundle with a valid manifest and main file plus `extra` entries, as bytes. */
async function zipWith(extra, { manifest = 'version=1.0.0\n' } = {}) {
  const zip = new JSZip()
  zip.file('module.properties', manifest, { createFolders: false })
  zip.file('index.js', 'module.exports = { register () {} }\n', { createFolders: false })
  for (const [name, content] of Object.entries(extra)) zip.file(name, content, { createFolders: false })
  return zip
}

test('a .zip that is not a zip is refused with NYALA_ERR_BUNDLE_NOT_ZIP', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const bad = path.join(modulesOf(root), 'notzip.zip')
  await writeFile(bad, 'this is plain text, not an archive\n'.repeat(20))
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_BUNDLE_NOT_ZIP', 'notzip')
  assert.equal(rec.bundle, bad)
  assert.match(rec.msg, /notzip\.zip: not a zip file/)
  await stopOk(host)
})

test('a truncated zip is refused with NYALA_ERR_BUNDLE_TRUNCATED', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const whole = await packWithNyala(
    await moduleSource(root, 'trunc', { files: { 'lib/padding.js': `// ${'x'.repeat(4000)}\n` } }),
    path.join(root, 'whole.zip'),
  )
  const data = await readFile(whole)
  const bad = path.join(modulesOf(root), 'trunc.zip')
  await writeFile(bad, data.subarray(0, Math.floor(data.length / 2)))
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_BUNDLE_TRUNCATED', 'trunc')
  assert.equal(rec.bundle, bad)
  assert.match(rec.msg, /trunc\.zip: truncated zip/)
  await stopOk(host)
})

test('entries with ".." or an absolute path are refused with NYALA_ERR_BUNDLE_UNSAFE_ENTRY', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const cases = [
    { module: 'dotdot', entry: '../evil.js' },
    { module: 'absolute', entry: '/etc/evil.js' },
  ]
  for (const c of cases) {
    const zip = await zipWith({ [c.entry]: 'process.exit(42)\n' })
    const data = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' })
    // jszip writes the name as given; make sure the archive really holds it
    assert.ok(data.includes(Buffer.from(c.entry)), `${c.entry} is in the zip bytes`)
    const names = Object.values((await JSZip.loadAsync(data)).files).map(
      (f) => f.unsafeOriginalName ?? f.name,
    )
    assert.ok(names.includes(c.entry), `${c.entry} is an entry: ${names}`)
    c.file = path.join(modulesOf(root), `${c.module}.zip`)
    await writeFile(c.file, data)
  }
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  for (const c of cases) {
    const rec = recordOf(host, 'NYALA_ERR_BUNDLE_UNSAFE_ENTRY', c.module)
    assert.equal(rec.bundle, c.file)
    assert.equal(rec.entry, c.entry)
    assert.ok(rec.msg.includes(`entry "${c.entry}"`), rec.msg)
  }
  await stopOk(host)
})

test('a bundle without module.properties is refused with NYALA_ERR_MANIFEST_MISSING', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const bad = await deployRaw(root, 'nomanifest', {
    'index.js': 'module.exports = { register () {} }\n',
    'lib/a.js': '',
  })
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_MANIFEST_MISSING', 'nomanifest')
  assert.equal(rec.bundle, bad)
  assert.match(rec.msg, /no module\.properties/)
  await stopOk(host)
})

test('malformed module.properties values are refused with NYALA_ERR_MANIFEST_INVALID naming key and value', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const cases = [
    { module: 'badversion', manifest: 'version=\n', key: 'version', value: '' },
    { module: 'badreload', manifest: 'version=1.0.0\nreloadable=maybe\n', key: 'reloadable', value: 'maybe' },
    { module: 'badprefix', manifest: 'version=1.0.0\nprefix=billing\n', key: 'prefix', value: 'billing' },
  ]
  for (const c of cases) {
    c.file = await deployRaw(root, c.module, {
      'module.properties': c.manifest,
      'index.js': 'module.exports = { register () {} }\n',
    })
  }
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  for (const c of cases) {
    const rec = recordOf(host, 'NYALA_ERR_MANIFEST_INVALID', c.module)
    assert.equal(rec.bundle, c.file)
    assert.equal(rec.key, c.key)
    assert.equal(rec.value, c.value)
    assert.ok(rec.msg.includes(`key "${c.key}" has value "${c.value}"`), rec.msg)
    assert.equal(typeof rec.expected, 'string')
  }
  await stopOk(host)
})

test('a main file that is not in the bundle is refused with NYALA_ERR_MAIN_MISSING', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const bad = await deployRaw(root, 'nomain', {
    'module.properties': 'version=1.0.0\nmain=app.js\n',
    'index.js': 'module.exports = { register () {} }\n',
  })
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_MAIN_MISSING', 'nomain')
  assert.equal(rec.bundle, bad)
  assert.equal(rec.entry, 'app.js')
  assert.match(rec.msg, /main file "app\.js"/)
  await stopOk(host)
})

test('a zip bomb is stopped at bundle.max.bytes with NYALA_ERR_BUNDLE_TOO_LARGE', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nbundle.max.bytes=1M\n')
  const healthyPacked = healthy(root)
  const zip = await zipWith({ 'zeros.bin': Buffer.alloc(50 * 1024 * 1024) })
  const data = await zip.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' })
  assert.ok(data.length < 1024 * 1024, `compressed to ${data.length} bytes`)
  const bad = path.join(modulesOf(root), 'bomb.zip')
  await writeFile(bad, data)
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_BUNDLE_TOO_LARGE', 'bomb')
  assert.equal(rec.bundle, bad)
  assert.equal(rec.limit, 1024 * 1024)
  assert.equal(rec.entry, 'zeros.bin')
  await stopOk(host)
})

test('two bundles of one module are refused with NYALA_ERR_BUNDLE_DUPLICATE naming both', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const dir = await moduleSource(root, 'billing')
  const first = await packWithNyala(dir, path.join(modulesOf(root), 'billing-1.0.0.zip'))
  const second = await packWithNyala(dir, path.join(modulesOf(root), 'billing-1.1.0.jar'))
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_BUNDLE_DUPLICATE', 'billing')
  assert.equal(rec.bundle, first)
  assert.equal(rec.other, second)
  assert.ok(rec.msg.includes(first) && rec.msg.includes(second), rec.msg)
  // neither copy serves: which code would run is never a guess
  assert.equal((await request(host.url('/billing'))).status, 404)
  await stopOk(host)
})

test('a syntax error is refused with NYALA_ERR_MODULE_SYNTAX naming index.js:3', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  const bad = await deploy(root, 'broken', {
    files: {
      'index.js':
        "'use strict'\nmodule.exports = {\n  register (app) { app.get('/', async () => ({ ok: true )) }\n}\n",
    },
    pack: packWithZip,
  })
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_MODULE_SYNTAX', 'broken')
  assert.equal(rec.bundle, bad)
  assert.ok(rec.msg.includes('index.js:3'), rec.msg)
  assert.equal((await request(host.url('/broken'))).body.code, 'NYALA_ERR_MODULE_UNAVAILABLE')
  await stopOk(host)
})

test('a dependency cycle fails its members and their dependents; others serve', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  await Promise.all([
    deploy(root, 'a', { fields: { 'depends-on': 'b' } }),
    deploy(root, 'b', { fields: { 'depends-on': 'a' } }),
    deploy(root, 'c', { fields: { 'depends-on': 'a' } }),
  ])
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  for (const name of ['a', 'b']) {
    const rec = recordOf(host, 'NYALA_ERR_DEPENDENCY_CYCLE', name)
    assert.equal(rec.bundle, path.join(modulesOf(root), `${name}.zip`))
    assert.ok(rec.msg.includes('a -> b -> a'), rec.msg)
  }
  const c = recordOf(host, 'NYALA_ERR_DEPENDENCY_FAILED', 'c')
  assert.equal(c.dependency, 'a')
  assert.equal(c.bundle, path.join(modulesOf(root), 'c.zip'))
  for (const name of ['a', 'b', 'c']) {
    const res = await request(host.url(`/${name}`))
    assert.equal(res.status, 503)
    assert.equal(res.body.code, 'NYALA_ERR_MODULE_UNAVAILABLE')
    assert.ok(res.body.message.includes(`"${name}"`), res.body.message)
  }
  await stopOk(host)
})

test('a missing dependency fails its dependent and theirs; others serve', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  await Promise.all([
    deploy(root, 'needy', { fields: { 'depends-on': 'ghost' } }),
    deploy(root, 'downstream', { fields: { 'depends-on': 'needy' } }),
    deploy(root, 'other', { fields: { 'optional-depends-on': 'ghost' } }),
  ])
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const missing = recordOf(host, 'NYALA_ERR_DEPENDENCY_MISSING', 'needy')
  assert.equal(missing.dependency, 'ghost')
  assert.equal(missing.bundle, path.join(modulesOf(root), 'needy.zip'))
  assert.match(missing.msg, /"needy" depends on "ghost"/)
  const failed = recordOf(host, 'NYALA_ERR_DEPENDENCY_FAILED', 'downstream')
  assert.equal(failed.dependency, 'needy')
  assert.equal(failed.bundle, path.join(modulesOf(root), 'downstream.zip'))
  // a missing optional dependency stops nothing
  assert.equal((await request(host.url('/other'))).status, 200)
  await stopOk(host)
})

test('a register that throws fails with NYALA_ERR_MODULE_REGISTER_FAILED; its dependent fails', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  await Promise.all([
    deploy(root, 'thrower', {
      files: {
        'index.js':
          "module.exports = { async register () { throw new Error('database unreachable at db:5432') } }\n",
      },
    }),
    deploy(root, 'dependent', { fields: { 'depends-on': 'thrower' } }),
  ])
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_MODULE_REGISTER_FAILED', 'thrower')
  assert.equal(rec.bundle, path.join(modulesOf(root), 'thrower.zip'))
  assert.ok(rec.msg.includes('database unreachable at db:5432'), rec.msg)
  const dep = recordOf(host, 'NYALA_ERR_DEPENDENCY_FAILED', 'dependent')
  assert.equal(dep.dependency, 'thrower')
  await stopOk(host)
})

async function startTimeoutCase(t, registerBody) {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nmodule.start.timeout=1\n')
  const healthyPacked = healthy(root)
  await deploy(root, 'hang', {
    files: { 'index.js': `module.exports = { async register () { ${registerBody} } }\n` },
  })
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const rec = recordOf(host, 'NYALA_ERR_MODULE_START_TIMEOUT', 'hang')
  assert.equal(rec.bundle, path.join(modulesOf(root), 'hang.zip'))
  assert.equal(rec.timeout, 1000)
  assert.equal((await request(host.url('/hang'))).status, 503)
  await stopOk(host)
}

test('a register that never finishes fails with NYALA_ERR_MODULE_START_TIMEOUT', (t) =>
  startTimeoutCase(t, 'await new Promise(() => {})'))

test('a register waiting on something that never comes fails with NYALA_ERR_MODULE_START_TIMEOUT', (t) =>
  // the pending timer stands for a connection that never answers; it keeps the event loop alive
  startTimeoutCase(t, 'await new Promise((resolve) => setTimeout(resolve, 120000))'))

test('two modules claiming one prefix both fail with NYALA_ERR_PREFIX_CONFLICT', async (t) => {
  const root = await makeRoot(t)
  const healthyPacked = healthy(root)
  await Promise.all([
    deploy(root, 'left', { fields: { prefix: '/same' } }),
    deploy(root, 'right', { fields: { prefix: '/same' } }),
  ])
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  for (const name of ['left', 'right']) {
    const rec = recordOf(host, 'NYALA_ERR_PREFIX_CONFLICT', name)
    assert.equal(rec.bundle, path.join(modulesOf(root), `${name}.zip`))
    assert.equal(rec.prefix, '/same')
    assert.match(rec.msg, /"left" and "right" both claim the URL prefix \/same/)
  }
  assert.equal((await request(host.url('/same'))).status, 404)
  await stopOk(host)
})

/** The fatal record of a run that stopped at start-up, checked against its stderr line. */
function fatalOf(result, code) {
  assert.equal(result.code, 1, `exit code; stderr: ${result.stderr}`)
  const rec = result.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((r) => r.code === code)
  assert.ok(rec, `a ${code} record in:\n${result.stdout}`)
  assert.ok(result.stderr.includes(`nyala: ${code}: ${rec.msg}`), result.stderr)
  return rec
}

test('configuration errors stop start-up naming file, key, value and what was expected', async (t) => {
  const cases = [
    {
      line: 'auto.reload.check.interval=fast',
      key: 'auto.reload.check.interval',
      value: 'fast',
      expected: /seconds/,
    },
    { line: 'port=99999', key: 'port', value: '99999', expected: /0 to 65535/ },
  ]
  for (const c of cases) {
    const root = await makeRoot(t, `host=127.0.0.1\n${c.line}\n`)
    const file = path.join(root, 'config', 'impala.properties')
    const rec = fatalOf(await runCli(['start', '--root', root]), 'NYALA_ERR_CONFIG_VALUE')
    assert.equal(rec.file, file)
    assert.equal(rec.key, c.key)
    assert.equal(rec.value, c.value)
    assert.match(rec.expected, c.expected)
    for (const part of [file, `"${c.key}"`, `"${c.value}"`]) assert.ok(rec.msg.includes(part), rec.msg)
  }

  const root = await makeRoot(t)
  const flag = fatalOf(await runCli(['start', '--root', root, '--port', 'abc']), 'NYALA_ERR_CONFIG_VALUE')
  assert.equal(flag.key, '--port')
  assert.equal(flag.value, 'abc')
  assert.match(flag.msg, /command line: key "--port" has value "abc", expected a TCP port/)

  const missing = fatalOf(
    await runCli(['start', '--root', root, '--config', 'missing.properties']),
    'NYALA_ERR_CONFIG_NOT_FOUND',
  )
  assert.equal(missing.file, path.join(root, 'missing.properties'))
})

test('a port in use stops start-up naming the listener and what moves it (NYALA_ERR_LISTEN); no admin URL file is left', async (t) => {
  const taken = net.createServer()
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.after(() => taken.close())
  const port = taken.address().port
  for (const c of [
    { config: `port=${port}\nadmin.port=0\n`, listener: 'HTTP listener', keys: /--port or NYALA_PORT/ },
    { config: `port=0\nadmin.port=${port}\n`, listener: 'admin API', keys: /admin\.port .*--admin-port/ },
  ]) {
    const root = await makeRoot(t, `host=127.0.0.1\nadmin.host=127.0.0.1\n${c.config}`)
    await healthy(root)
    const rec = fatalOf(await runCli(['start', '--root', root]), 'NYALA_ERR_LISTEN')
    assert.equal(rec.listener, c.listener)
    assert.equal(rec.port, port)
    assert.match(
      rec.msg,
      new RegExp(`^the ${c.listener} cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`),
    )
    assert.match(rec.keys, c.keys)
    // the admin API listens first: a failed HTTP listen must not leave its address for `nyala status`
    assert.equal(existsSync(path.join(root, 'run', 'admin.url')), false, `${c.listener}: run/admin.url`)
    assert.equal(existsSync(path.join(root, 'run', 'nyala.pid')), false, `${c.listener}: run/nyala.pid`)
  }
})

test('an unknown configuration key is a warning with a close match; the host starts', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nauto.reload.modulez=true\n')
  const healthyPacked = healthy(root)
  await healthyPacked
  const host = await startHost(t, root)
  await assertHealthy(host)
  const recs = host.logs().filter((r) => r.code === 'NYALA_ERR_CONFIG_UNKNOWN_KEY')
  assert.equal(recs.length, 1)
  const [rec] = recs
  assert.equal(rec.level, 40)
  assert.equal(rec.file, path.join(root, 'config', 'impala.properties'))
  assert.equal(rec.key, 'auto.reload.modulez')
  assert.ok(rec.msg.includes('"auto.reload.modules"'), rec.msg)
  await stopOk(host)
})

test('CLI: help, usage errors, and pack refusing a directory without module.properties', async (t) => {
  const cli = (args) => runCli(args).then((res) => ({ args, ...res }))
  const helps = await Promise.all([cli(['--help']), cli(['start', '--help']), cli(['pack', '--help'])])
  for (const res of helps) {
    assert.equal(res.code, 0, `nyala ${res.args.join(' ')}: ${res.stderr}`)
    assert.match(res.stdout, /Usage: nyala/)
  }
  assert.match(helps[0].stdout, /Commands:/)
  assert.match(helps[1].stdout, /--root DIR/)
  assert.match(helps[2].stdout, /nyala pack <dir>/)
  // every command the top help lists has a help of its own, and every help fits a terminal of
  // 80 columns (a wrapped help line is read as two options)
  const listed = [
    ...helps[0].stdout
      .split('Commands:\n')[1]
      .split('\n\n')[0]
      .matchAll(/^ {2}([a-z]+)/gm),
  ]
  const names = listed.map((m) => m[1])
  assert.ok(names.length >= 9, `commands in the top help: ${names.join(', ')}`)
  const all = [helps[0], ...(await Promise.all(names.map((name) => cli([name, '--help']))))]
  for (const res of all) {
    assert.equal(res.code, 0, `nyala ${res.args.join(' ')}: ${res.stderr}`)
    assert.match(res.stdout, /Usage: nyala/, `nyala ${res.args.join(' ')}`)
    for (const line of res.stdout.split('\n'))
      assert.ok(line.length <= 80, `nyala ${res.args.join(' ')}: a line of ${line.length} columns: ${line}`)
  }

  const usage = await Promise.all([
    cli(['frobnicate']),
    cli(['start', '--bogus']),
    cli(['pack', '--bogus', 'x']),
    // past what a timer holds: it once fired every millisecond with a warning each time
    cli(['deploy', 'x.zip', '--timeout', '99999999']),
  ])
  for (const res of usage) {
    assert.equal(res.code, 2, `nyala ${res.args.join(' ')}`)
    assert.match(res.stderr, /NYALA_ERR_CLI_USAGE/)
  }
  assert.match(usage[0].stderr, /unknown command "frobnicate"\nRun "nyala --help" for usage\./)
  assert.match(usage[1].stderr, /unknown option "--bogus"\nRun "nyala start --help" for usage\./)
  assert.match(usage[2].stderr, /Run "nyala pack --help" for usage\./)
  assert.match(usage[3].stderr, /--timeout must be .* at most 2147483 \(24 days\), got "99999999"/)

  const root = await makeRoot(t)
  const dir = await writeFiles(path.join(root, 'src', 'nomanifest'), {
    'index.js': 'module.exports = { register () {} }\n',
  })
  const out = path.join(root, 'out', 'nomanifest.zip')
  const res = await runCli(['pack', dir, '-o', out])
  assert.equal(res.code, 1, res.stderr)
  assert.match(res.stderr, /NYALA_ERR_MANIFEST_MISSING/)
  assert.ok(res.stderr.includes(dir), res.stderr)
  assert.equal(existsSync(out), false)
  assert.equal(existsSync(`${dir}.zip`), false)
  assert.deepEqual(await readdir(path.join(root, 'src')), ['nomanifest'])
})

test('CLI: a file it cannot write is a coded error; with --json stdout is JSON for every error', async (t) => {
  const root = await makeRoot(t)
  // the staging directory's path is taken by a plain file: deploy cannot place the bundle there
  await writeFile(path.join(root, 'staging'), 'not a directory')
  const src = await moduleSource(root, 'solo')
  const bundle = await packWithNyala(src, path.join(root, 'src', 'solo.zip'))
  const placed = await runCli(['deploy', bundle, '--root', root, '--no-wait'])
  assert.equal(placed.code, 1, placed.stderr)
  assert.match(
    placed.stderr,
    /NYALA_ERR_DEPLOY_WRITE: solo\.zip cannot be placed in the staging directory .*staging: /,
  )
  assert.doesNotMatch(placed.stderr, /unexpected error|\n\s+at /, 'no stack trace')
  const placedJson = await runCli(['deploy', bundle, '--root', root, '--no-wait', '--json'])
  assert.equal(placedJson.code, 1)
  const answer = JSON.parse(placedJson.stdout)
  assert.equal(answer.result, 'error')
  assert.equal(answer.code, 'NYALA_ERR_DEPLOY_WRITE')

  // pack's output under a plain file: the operation, the path and the system's reason
  const packed = await runCli(['pack', src, '-o', path.join(root, 'staging', 'solo.zip')])
  assert.equal(packed.code, 1, packed.stderr)
  assert.match(packed.stderr, /NYALA_ERR_FILE_SYSTEM: cannot \w+ .*staging.*: E[A-Z]+/)
  assert.doesNotMatch(packed.stderr, /unexpected error|\n\s+at /, 'no stack trace')

  // errors the commands did not answer as JSON themselves: an admin API nobody serves, a
  // bundle that is not there
  const closed = await new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
  const runs = await Promise.all([
    runCli(['status', '--admin', `http://127.0.0.1:${closed}`, '--json']),
    runCli(['deploy', bundle, '--admin', `http://127.0.0.1:${closed}`, '--json']),
    runCli(['verify', path.join(root, 'nosuch.zip'), '--root', root, '--json']),
    runCli(['status', '--bogus', '--json']),
  ])
  for (const res of runs) {
    assert.equal(res.code, res === runs[3] ? 2 : 1, `${res.args?.join(' ')}: ${res.stderr}`)
    const json = JSON.parse(res.stdout)
    assert.match(json.code ?? json.error?.code, /^NYALA_ERR_/, res.stdout)
    assert.match(res.stderr, /NYALA_ERR_/)
  }
  assert.equal(JSON.parse(runs[0].stdout).code, 'NYALA_ERR_ADMIN_UNREACHABLE')
  assert.equal(JSON.parse(runs[2].stdout).code, 'NYALA_ERR_BUNDLE_READ')
  assert.equal(JSON.parse(runs[3].stdout).code, 'NYALA_ERR_CLI_USAGE')

  // an admin API that takes the call and never answers (here within 300 ms): not "cannot reach"
  const sockets = new Set()
  const silent = net.createServer((socket) => sockets.add(socket))
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const socket of sockets) socket.destroy()
    silent.close()
  })
  const late = await runCli(['status', '--admin', `http://127.0.0.1:${silent.address().port}`], {
    env: { NYALA_ADMIN_ANSWER_MS: '300' },
  })
  assert.equal(late.code, 1, late.stderr)
  assert.match(late.stderr, /NYALA_ERR_ADMIN_TIMEOUT: the admin API at .* did not answer within 0\.3 s/)
})
