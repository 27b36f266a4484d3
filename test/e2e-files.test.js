// Bundle files on disk where code expects them: the content-addressed, read-only cache
// directory (`cache.directory`, default run/cache) that __dirname points into, a static file
// root served by @fastify/static, a package reading its own file, a Worker started from a file,
// a native addon loaded once per content, the directory shared by a reload of the same content
// and removed after its last generation stops, an addon for another machine refused while the
// old generation keeps serving, and the start-up sweep.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, copyFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import test from 'node:test'
import {
  agentGet,
  isAlive,
  killAfter,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  projectRoot,
  request,
  runCli,
  startDaemon,
  startHost,
  waitUntil,
} from './helpers.js'

const addonFile = path.join(projectRoot, 'native', 'build', 'Release', 'nyala_fdpass.node')
const contentDir = /^[0-9a-f]{64}$/

// module code: every way of reaching a file beside the code
const indexJs = `
// how many times any generation's code began to run (the host's global: code runs in its context)
globalThis.filesTopLevelRuns = (globalThis.filesTopLevelRuns ?? 0) + 1
const fs = require('node:fs')
const path = require('node:path')
const { Worker } = require('node:worker_threads')
// an absolute path built from __dirname, without extension, as the bindings package does
const addon = require(path.join(__dirname, 'build', 'Release', 'nyala_fdpass'))
addon.loads = (addon.loads ?? 0) + 1
const templ = require('templ')
module.exports = {
  async register (app, ctx) {
    await app.register(require('@fastify/static'), { root: path.join(__dirname, 'public'), prefix: '/static/' })
    app.get('/info', async () => ({
      generation: ctx.generation,
      dirname: __dirname,
      filename: __filename,
      text: fs.readFileSync(path.join(__dirname, 'public', 'x.txt'), 'utf8'),
      templ: templ.render('nyala'),
      loads: addon.loads,
      topLevelRuns: globalThis.filesTopLevelRuns,
      addonWorks: typeof addon.describe === 'function',
      resolved: require.resolve('./public/x.txt'),
    }))
    app.get('/worker', () => new Promise((resolve, reject) => {
      const worker = new Worker(path.join(__dirname, 'worker.js'))
      worker.once('message', (text) => resolve({ text }))
      worker.once('error', reject)
    }))
  },
}
`

/** A bundle of module `files` whose public/x.txt says `text`; `addon` is the .node file's bytes. */
async function filesBundle(root, tag, { text, addon }) {
  const dir = await moduleSource(root, `files-${tag}`, {
    fields: { prefix: '/files' },
    files: {
      'index.js': indexJs,
      'public/x.txt': text,
      'worker.js': `const { parentPort } = require('node:worker_threads')\nparentPort.postMessage(require('node:fs').readFileSync(require('node:path').join(__dirname, 'public', 'x.txt'), 'utf8'))\n`,
      'node_modules/templ/package.json': '{ "name": "templ", "main": "lib/index.js" }\n',
      'node_modules/templ/lib/index.js': `const fs = require('node:fs')\nconst path = require('node:path')\nconst template = fs.readFileSync(path.join(__dirname, '..', 'template.txt'), 'utf8')\nexports.render = (name) => template.replace('{name}', name)\n`,
      'node_modules/templ/template.txt': 'hello {name}',
      'build/Release/nyala_fdpass.node': addon,
    },
  })
  return packWithNyala(dir, path.join(root, 'src', `files-${tag}.zip`))
}

const cacheOf = (root) => path.join(root, 'run', 'cache')
const contentDirs = async (root) => (await readdir(cacheOf(root))).filter((n) => contentDir.test(n)).sort()

/** Distinct files (by inode) of .node addons under the cache mapped into process `pid`. */
async function mappedAddons(pid) {
  const maps = await readFile(`/proc/${pid}/maps`, 'utf8')
  const inodes = new Set()
  for (const line of maps.split('\n')) {
    const m = /^\S+ \S+ \S+ \S+ (\d+)\s+(\/.*)$/.exec(line)
    if (m?.[2]?.includes('/run/cache/') && /\.node( \(deleted\))?$/.test(m[2])) inodes.add(m[1])
  }
  return inodes.size
}

/** The addon's bytes with its ELF machine set to one that is not this process's. */
function forOtherMachine(bytes) {
  const copy = Buffer.from(bytes)
  copy.writeUInt16LE(process.arch === 'arm64' ? 62 : 183, 18)
  return copy
}

const moduleOf = async (host, name) =>
  (await request(host.admin('/modules'))).body.modules.find((m) => m.name === name)

test('bundle files on disk: static root, files beside the code, a Worker and a native addon; reloads share or remove the cache directory', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nauto.reload.modules=true\n')
  const addon = await readFile(addonFile)
  await copyFile(
    await filesBundle(root, 'a', { text: 'first', addon }),
    path.join(modulesOf(root), 'files.zip'),
  )
  const host = await startHost(t, root, ['--log-format', 'json'])

  const info = (await request(host.url('/files/info'))).body
  assert.equal(info.text, 'first')
  assert.equal(info.templ, 'hello nyala')
  assert.equal(info.loads, 1)
  assert.equal(info.addonWorks, true)
  const [dir] = await contentDirs(root)
  assert.equal(info.dirname, path.join(cacheOf(root), dir))
  assert.equal(info.filename, path.join(cacheOf(root), dir, 'index.js'))
  assert.equal(info.resolved, path.join(cacheOf(root), dir, 'public', 'x.txt'))
  assert.equal((await request(host.url('/files/static/x.txt'))).text, 'first')
  assert.deepEqual((await request(host.url('/files/worker'))).body, { text: 'first' })
  // read-only, the JavaScript included (a Worker or a package reading its own .js finds it)
  assert.equal((await stat(info.dirname)).mode & 0o777, 0o555)
  assert.equal((await stat(path.join(info.dirname, 'public'))).mode & 0o777, 0o555)
  assert.equal((await stat(path.join(info.dirname, 'public', 'x.txt'))).mode & 0o777, 0o444)
  assert.equal((await stat(path.join(info.dirname, 'index.js'))).mode & 0o777, 0o444)

  // a forced reload of the same content: same directory, nothing written, the addon not loaded again
  const before = (await stat(path.join(info.dirname, 'index.js'))).mtimeMs
  const forced = await request(host.admin('/modules/files/reload?force=true'), { method: 'POST' })
  assert.equal(forced.body.result, 'reloaded', JSON.stringify(forced.body))
  const second = (await request(host.url('/files/info'))).body
  assert.equal(second.generation, 2)
  assert.equal(second.dirname, info.dirname)
  assert.equal(second.loads, 2, "the second generation got the first one's addon exports")
  assert.equal((await stat(path.join(info.dirname, 'index.js'))).mtimeMs, before)
  // the old generation has stopped: its directory is the new one's, so it stays
  const stopped = (n) => host.logs().some((r) => r.msg === `module files generation ${n} stopped`)
  await waitUntil(() => stopped(1), 'generation 1 stopped', 15_000)
  assert.deepEqual(await contentDirs(root), [dir])
  assert.equal((await request(host.url('/files/static/x.txt'))).text, 'first')
  assert.equal(await mappedAddons(host.child.pid), 1)

  // new content: a new directory; the old one goes once its last generation stopped
  const inode = async (dir, file) => (await stat(path.join(dir, file))).ino
  const unchanged = {
    index: await inode(info.dirname, 'index.js'),
    addon: await inode(info.dirname, 'build/Release/nyala_fdpass.node'),
  }
  await copyFile(
    await filesBundle(root, 'b', { text: 'second', addon }),
    path.join(modulesOf(root), 'files.zip'),
  )
  await waitUntil(async () => (await request(host.url('/files/info'))).body.text === 'second', 'reload to b')
  const third = (await request(host.url('/files/info'))).body
  assert.notEqual(third.dirname, info.dirname)
  // files whose bytes did not change are hard links to the previous directory's, not written again
  assert.equal(await inode(third.dirname, 'index.js'), unchanged.index)
  assert.equal(await inode(third.dirname, 'build/Release/nyala_fdpass.node'), unchanged.addon)
  assert.equal(await readFile(path.join(third.dirname, 'public', 'x.txt'), 'utf8'), 'second')
  assert.equal(third.loads, 3, 'an addon with the same bytes is loaded once, whatever bundle holds it')
  await waitUntil(() => stopped(2), 'generation 2 stopped', 15_000)
  await waitUntil(async () => !existsSync(info.dirname), 'the old directory removed', 15_000)
  assert.deepEqual(await contentDirs(root), [path.basename(third.dirname)])
  assert.equal(await mappedAddons(host.child.pid), 1)

  // an addon built for another machine: refused while validating, the old generation serves on
  await copyFile(
    await filesBundle(root, 'c', { text: 'third', addon: forOtherMachine(addon) }),
    path.join(modulesOf(root), 'files.zip'),
  )
  const failed = await waitUntil(async () => (await moduleOf(host, 'files')).lastError, 'the refusal')
  assert.equal(failed.code, 'NYALA_ERR_ADDON_INCOMPATIBLE')
  assert.match(
    failed.message,
    /files\.zip: native addon "build\/Release\/nyala_fdpass\.node" was built for ELF 64-bit LSB/,
  )
  const record = host.logs().find((r) => r.code === 'NYALA_ERR_ADDON_INCOMPATIBLE')
  assert.equal(record.entry, 'build/Release/nyala_fdpass.node')
  assert.match(record.expected, new RegExp(`${process.platform}-${process.arch}`))
  const after = (await request(host.url('/files/info'))).body
  assert.equal(after.text, 'second')
  assert.equal(after.generation, third.generation)
  assert.equal(after.topLevelRuns, third.topLevelRuns, 'refused before any of its code ran')
  // nothing was written for the refused candidate
  assert.deepEqual(await contentDirs(root), [path.basename(third.dirname)])

  // a graceful stop keeps the directory for the next start and drops this process's lease
  assert.equal((await host.stop('SIGTERM')).code, 0)
  assert.deepEqual(await contentDirs(root), [path.basename(third.dirname)])
  assert.deepEqual(await readdir(path.join(cacheOf(root), '.leases')), [])
})

/** A pid that is certainly gone: a process that ran and exited. */
async function deadPid() {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await new Promise((resolve) => child.once('exit', resolve))
  return child.pid
}

/** Writes a read-only content directory as the cache does. */
async function fakeContent(dir) {
  await mkdir(path.join(dir, 'sub'), { recursive: true })
  await writeFile(path.join(dir, 'sub', 'f.txt'), 'x', { mode: 0o444 })
  await chmod(path.join(dir, 'sub'), 0o555)
  await chmod(dir, 0o555)
}

/** A bundle whose package loads its addon with the `bindings` package (as better-sqlite3 and sqlite3 do); `tag` changes its main file only. */
async function bindingsBundle(root, tag, addon) {
  const packageFiles = async (name, files) =>
    Object.fromEntries(
      await Promise.all(
        files.map(async (f) => [
          `node_modules/${name}/${f}`,
          await readFile(path.join(projectRoot, 'node_modules', name, f), 'utf8'),
        ]),
      ),
    )
  const dir = await moduleSource(root, `bindy-${tag}`, {
    fields: { prefix: '/bindy' },
    files: {
      'index.js': `
const native = require('fdpass')
const { where } = require('./lib/where.mjs')
const call = require('./lib/call.js')
// the file names V8 gives this frame and its caller's (what bindings, callsites and parent-module read)
function frameFiles () {
  const saved = Error.prepareStackTrace
  Error.prepareStackTrace = (e, frames) => frames.slice(0, 2).map((f) => f.getFileName())
  try { return new Error('where').stack } finally { Error.prepareStackTrace = saved }
}
module.exports = {
  async register (app, ctx) {
    app.get('/info', async () => ({
      tag: ${JSON.stringify(tag)},
      generation: ctx.generation,
      works: typeof native.describe === 'function',
      found: native.path,
      filename: __filename,
      // this file reads frames' names: named on disk; lib/call.js (no addon in its package, no
      // frame names read) keeps the bundle's name, and its compiled code across contents
      frameFiles: call(frameFiles),
      stack: new Error('shown').stack,
      // an ES module: transformed, its frames mapped back to its own lines
      esmStack: where(),
    }))
    app.get('/broken', async () => {
      try {
        require('fdpass/broken.js')
      } catch (err) {
        return { code: err.code, message: err.message }
      }
    })
    app.get('/crash', async () => {
      // what source-map-support's install() does: frames shown by CallSite.getFileName()
      const saved = Error.prepareStackTrace
      Error.prepareStackTrace = (e, frames) =>
        String(e) + frames.map((f) => '\\n    at ' + (f.getFunctionName() || '<anonymous>') + ' (' + f.getFileName() + ':' + f.getLineNumber() + ':' + f.getColumnNumber() + ')').join('')
      setTimeout(function crashes () {
        const err = new Error('frames by file name')
        try { void err.stack } finally { Error.prepareStackTrace = saved }
        throw err
      }, 10)
      return { armed: true }
    })
  },
}
`,
      'lib/call.js': 'module.exports = (f) => f()\n',
      'lib/where.mjs': "export function where () {\n  return new Error('esm').stack\n}\n",
      // in the package holding the addon (compiled with the sourceURL after it); no newline at its
      // end: the end of input is on its line 1
      'node_modules/fdpass/broken.js': 'module.exports = call(',
      'node_modules/fdpass/package.json': '{ "name": "fdpass", "main": "index.js" }\n',
      'node_modules/fdpass/index.js': "module.exports = require('bindings')('nyala_fdpass')\n",
      'node_modules/fdpass/build/Release/nyala_fdpass.node': addon,
      ...(await packageFiles('bindings', ['package.json', 'bindings.js'])),
      ...(await packageFiles('file-uri-to-path', ['package.json', 'index.js'])),
    },
  })
  return packWithNyala(dir, path.join(root, 'src', `bindy-${tag}.zip`))
}

test('the bindings package finds a bundled addon from its stack frames, in every content; stacks still name the bundle', async (t) => {
  // a crash not found to be the module's would be the host's: no successor to outlive the test
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nauto.reload.modules=true\nhost.crash.action=exit\n')
  const addon = await readFile(addonFile)
  const deployed = path.join(modulesOf(root), 'bindy.zip')
  await copyFile(await bindingsBundle(root, 'a', addon), deployed)
  const host = await startHost(t, root, ['--log-format', 'json'])

  const first = (await request(host.url('/bindy/info'))).body
  assert.equal(first.works, true, JSON.stringify(first))
  const [dir] = await contentDirs(root)
  assert.equal(
    first.found,
    path.join(cacheOf(root), dir, 'node_modules/fdpass/build/Release/nyala_fdpass.node'),
  )
  // a frame's file is the file on disk, as in Node; what err.stack shows is the deployed bundle
  assert.deepEqual(first.frameFiles, [first.filename, `${deployed}/lib/call.js`])
  assert.match(
    first.stack,
    new RegExp(`\\(${deployed.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/index\\.js:\\d+:\\d+\\)`),
  )
  assert.doesNotMatch(first.stack, /run\/cache/)
  assert.match(first.esmStack, /\bwhere \(.*\/bindy\.zip\/lib\/where\.mjs:2:10\)/)
  assert.doesNotMatch(first.esmStack, /run\/cache/)
  // a syntax error found when a package file is first required: its line in the file as written
  const broken = (await request(host.url('/bindy/broken'))).body
  assert.equal(broken.code, 'NYALA_ERR_MODULE_SYNTAX')
  assert.match(broken.message, /node_modules\/fdpass\/broken\.js:1\b/)

  // a new content whose packages did not change: bindings runs again from the new directory
  await copyFile(await bindingsBundle(root, 'b', addon), deployed)
  await waitUntil(async () => (await request(host.url('/bindy/info'))).body.tag === 'b', 'reload to b')
  const second = (await request(host.url('/bindy/info'))).body
  assert.equal(second.works, true, JSON.stringify(second))
  assert.notEqual(path.dirname(second.filename), path.dirname(first.filename))
  assert.equal(
    second.found,
    path.join(path.dirname(second.filename), 'node_modules/fdpass/build/Release/nyala_fdpass.node'),
  )
  assert.deepEqual(second.frameFiles, [second.filename, `${deployed}/lib/call.js`])
  assert.doesNotMatch(second.stack, /run\/cache/)

  // a crash whose stack names files in the cache directory (a replaced Error.prepareStackTrace)
  // is still the module's: restarted, the host serving on
  assert.equal((await request(host.url('/bindy/crash'))).body.armed, true)
  await waitUntil(
    () => host.logs().some((r) => r.code === 'NYALA_ERR_MODULE_CRASHED'),
    'the crash record',
    15_000,
  )
  const record = host.logs().find((r) => r.code === 'NYALA_ERR_MODULE_CRASHED')
  assert.equal(record.module, 'bindy')
  assert.match(record.stack, /run\/cache\/[0-9a-f]{64}\/index\.js:\d+/)
  assert.equal(record.action, 'restart')
  await waitUntil(async () => (await request(host.url('/bindy/info'))).body.works === true, 'restarted')
  assert.equal(host.child.exitCode, null)
})

test('start-up sweep: directories nobody uses and scratch directories of dead processes go, leased ones stay', async (t) => {
  const root = await makeRoot(t)
  const dir = await moduleSource(root, 'plain')
  await packWithNyala(dir, path.join(modulesOf(root), 'plain.zip'))
  const cache = cacheOf(root)
  const stale = path.join(cache, 'a'.repeat(64))
  const leased = path.join(cache, 'b'.repeat(64))
  const dead = await deadPid()
  const scratch = path.join(cache, `.tmp-${'c'.repeat(64)}-${dead}-1`)
  for (const d of [stale, leased, scratch]) await fakeContent(d)
  // a live process (this test) leases one: an upgrade's other instance still using it
  await mkdir(path.join(cache, '.leases'))
  await writeFile(path.join(cache, '.leases', String(process.pid)), `${'b'.repeat(64)}\n`)
  await writeFile(path.join(cache, '.leases', String(dead)), `${'a'.repeat(64)}\n`)

  const host = await startHost(t, root, ['--log-format', 'json'])
  await waitUntil(() => host.logs().some((r) => /unused cache directories/.test(r.msg ?? '')), 'the sweep')
  assert.equal(host.logs().find((r) => /unused cache directories/.test(r.msg)).removed, 1)
  assert.equal(existsSync(stale), false)
  assert.equal(existsSync(scratch), false)
  assert.equal(existsSync(leased), true)
  const dirs = await contentDirs(root)
  assert.equal(dirs.length, 2, `the leased one and the one plain uses: ${dirs}`)
  // the dead process's lease is gone, the live ones are there
  assert.deepEqual(
    (await readdir(path.join(cache, '.leases'))).sort(),
    [String(host.child.pid), String(process.pid)].sort(),
  )
  await host.stop('SIGTERM')
})

test('30 reloads between two contents under keep-alive load: no failed request, one directory per content in use, the addon mapped once', {
  timeout: 240_000,
}, async (t) => {
  const root = await makeRoot(t)
  const addon = await readFile(addonFile)
  const bundles = [
    await filesBundle(root, 'a', { text: 'a', addon }),
    await filesBundle(root, 'b', { text: 'b', addon }),
  ]
  await copyFile(bundles[0], path.join(modulesOf(root), 'files.zip'))
  const host = await startHost(t, root, ['--log-format', 'json'])
  const agents = [0, 1].map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }))
  t.after(() => {
    for (const agent of agents) agent.destroy()
  })
  const problems = []
  let requests = 0
  let stop = false
  const deadline = Date.now() + 180_000
  const loops = agents.map(async (agent, i) => {
    while (!stop && Date.now() < deadline) {
      // every other request through @fastify/static's root in the cache directory
      const res = await agentGet(agent, host.url(i % 2 ? '/files/static/x.txt' : '/files/info'))
      requests++
      const ok = i % 2 ? /^[ab]$/.test(res.body) : /^[ab]$/.test(res.body?.text ?? '')
      if ((res.error || res.status !== 200 || !ok) && problems.length < 20)
        problems.push(res.error?.message ?? `${res.status} ${JSON.stringify(res.body)}`)
    }
  })
  const reloads = 30
  try {
    for (let i = 1; i <= reloads; i++) {
      const temp = path.join(modulesOf(root), '.files.zip.partial')
      await copyFile(bundles[i % 2], temp)
      await rename(temp, path.join(modulesOf(root), 'files.zip'))
      const res = await request(host.admin('/modules/files/reload'), {
        method: 'POST',
        signal: AbortSignal.timeout(30_000),
      })
      assert.equal(res.body.result, 'reloaded', `reload ${i}: ${res.text}`)
      assert.equal((await request(host.url('/files/info'))).body.text, i % 2 ? 'b' : 'a')
    }
  } finally {
    stop = true
    await Promise.all(loops)
  }
  assert.deepEqual(problems, [], 'no failed request while the cache directories came and went')
  assert.ok(requests > reloads, `the load overlapped the reloads (${requests} requests)`)
  const last = (await request(host.url('/files/info'))).body
  assert.equal(last.generation, reloads + 1)
  assert.equal(last.loads, reloads + 1, 'every generation got the one loaded addon')
  await waitUntil(
    async () => (await contentDirs(root)).length === 1,
    'one cache directory left: the one in use',
    30_000,
  )
  assert.deepEqual(await contentDirs(root), [path.basename(last.dirname)])
  assert.equal(await mappedAddons(host.child.pid), 1)
  assert.equal((await host.stop('SIGTERM')).code, 0)
})

test('a process upgrade shares the cache directory: the old instance exits without removing what the successor serves', async (t) => {
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\nshutdown.grace.period=10\n')
  const addon = await readFile(addonFile)
  await copyFile(await filesBundle(root, 'a', { text: 'up', addon }), path.join(modulesOf(root), 'files.zip'))
  const old = await startDaemon(t, root)
  const before = (await request(old.url('/files/info'), { headers: { connection: 'close' } })).body
  const leases = path.join(cacheOf(root), '.leases')
  assert.deepEqual(await readdir(leases), [String(old.pid)])

  const res = await runCli(['upgrade', '--root', root], { cwd: root, timeoutMs: 90_000 })
  const successor = Number(/successor pid (\d+)/.exec(res.stdout)?.[1] ?? 0)
  if (successor) killAfter(t, successor)
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)
  await waitUntil(() => !isAlive(old.pid), `old pid ${old.pid} to exit after draining`, 30_000)

  const after = (await request(old.url('/files/info'), { headers: { connection: 'close' } })).body
  assert.equal(after.dirname, before.dirname, 'the successor uses the same directory')
  assert.equal(after.text, 'up')
  assert.equal(after.loads, 1, 'the successor is a new process: its own one load of the addon')
  assert.deepEqual(await contentDirs(root), [path.basename(before.dirname)])
  assert.deepEqual(await readdir(leases), [String(successor)])
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), 'the successor to exit', 30_000)
  assert.deepEqual(await contentDirs(root), [path.basename(before.dirname)], 'kept for the next start')
})

test('a cache directory that cannot be written is a warning: modules that read no files beside themselves serve', async (t) => {
  // a path under a regular file can never be made, whoever runs the test (root included)
  const root = await makeRoot(t, 'port=0\nhost=127.0.0.1\ncache.directory=config/impala.properties/cache\n')
  await packWithNyala(await moduleSource(root, 'plain'), path.join(modulesOf(root), 'plain.zip'))
  const host = await startHost(t, root, ['--log-format', 'json'])
  assert.equal((await request(host.url('/plain/'))).body.module, 'plain')
  const warning = host.logs().find((r) => r.code === 'NYALA_ERR_CACHE_WRITE')
  assert.equal(warning?.level, 40, 'logged as a warning')
  assert.equal(warning.module, 'plain')
  assert.match(
    warning.message,
    /plain\.zip: cannot write its files to the cache directory .*config\/impala\.properties\/cache/,
  )
  assert.equal((await host.stop('SIGTERM')).code, 0)
})
