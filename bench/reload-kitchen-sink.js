// Issue 15 part 6, reloads stay lossless and flat: one module using every issue-15 feature at once
// (a TypeScript main in an ES module scope, the ESM-only chalk 5 and nanoid 5 by import, the
// exports-only CommonJS dunder-proto, a static asset read through __dirname, the project's own
// native addon, a WebSocket route through @fastify/websocket), packed by `nyala pack`, reloaded
// 300 times (quick: 10) through the admin API under a paced keep-alive load. Each reload swaps the
// bundle between two contents (they differ in the asset only), so the cache directory of each
// content comes and goes. Every 10th reload (quick: 5th) a WebSocket is opened before it and echoes
// once more after it (still on its old generation), then closes. Measured: failed requests (target
// 0), heap after a full GC at reload 10 and at the end (target: within 5 MB; the probe module of
// reload-memory.js, the host runs with --expose-gc), content directories under the cache directory
// (target: never more than the 2 distinct contents, 1 once the old generation drained) and the
// distinct .node files mapped into the host (/proc/<pid>/maps; target 1: the addon's bytes are the
// same in both contents and are loaded once for the life of the process).
import { copyFile, mkdir, readdir, readFile, rename, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import WebSocket from 'ws'
import {
  assertBuilt,
  cliPath,
  makeRoot,
  mb as mbOf,
  packBundle,
  packModule,
  projectRoot,
  request,
  requestSettled,
  startHost,
  startLoad,
  withSession,
  writeModule,
} from './common.js'
import { probeIndex } from './reload-memory.js'

/** Heap growth after GC from reload 10 to the last reload under which the heap counts as flat. */
export const flatHeapBytes = 5 * 1024 * 1024
/** The reload whose heap is the baseline (JIT, pools and caches warmed up by then). */
const baseReload = 10

const full = { reloads: 300, every: 50, socketEvery: 10, connections: 4, rate: 200 }
const quick = { reloads: 10, every: 5, socketEvery: 5, connections: 2, rate: 100 }

const addonFile = path.join(projectRoot, 'native', 'build', 'Release', 'nyala_fdpass.node')
const contentDir = /^[0-9a-f]{64}$/

// the module's own files: a TypeScript main (stripped in memory, an ES module by package.json type)
const sinkIndex = `import websocket from '@fastify/websocket'
import chalk from 'chalk'
import getProto from 'dunder-proto/get'
import { nanoid } from 'nanoid'
import files from './lib/files.cjs'

interface Ctx { generation: number }
interface Track { created: number, registry: FinalizationRegistry<number> }

export default {
  async register (app: any, ctx: Ctx): Promise<void> {
    // the probe module (a dependency, never reloaded) counts the generations collected
    const track = (globalThis as unknown as { __nyalaBenchGenerations: Track }).__nyalaBenchGenerations
    track.created++
    track.registry.register(ctx, ctx.generation)
    // some heap owned by this generation only
    const ballast: string[] = Array.from({ length: 4096 }, (_, i) => 'generation ' + ctx.generation + ' item ' + i)
    await app.register(websocket)
    app.get('/', async () => ({
      v: ctx.generation,
      pid: process.pid,
      asset: files.asset(),
      dir: files.dir,
      id: nanoid().length,
      red: chalk.red('x').includes('x'),
      proto: getProto([]) === Array.prototype,
      addon: typeof files.addon.describe,
      items: ballast.length,
    }))
    app.get('/ws', { websocket: true }, (socket: any) => {
      socket.on('message', (data: Buffer) => socket.send(ctx.generation + ':' + data))
    })
  },
}
`

// CommonJS beside it: __dirname points into the content's cache directory
const filesCjs = `const fs = require('node:fs')
const path = require('node:path')
exports.addon = require(path.join(__dirname, '..', 'build', 'Release', 'nyala_fdpass'))
exports.dir = path.dirname(__dirname)
exports.asset = () => fs.readFileSync(path.join(__dirname, '..', 'public', 'asset.txt'), 'utf8')
`

const packageJson = JSON.stringify({
  name: 'sink',
  type: 'module',
  dependencies: { '@fastify/websocket': '*', chalk: '*', nanoid: '*', 'dunder-proto': '*' },
})

/** Packs the sink module with the asset text `asset` to `out`; its node_modules is the project's. */
async function sinkBundle(src, asset, out) {
  const files = {
    'module.properties': 'version=1.0.0\nmain=index.ts\ndepends-on=probe\n',
    'index.ts': sinkIndex,
    'lib/files.cjs': filesCjs,
    'package.json': packageJson,
    'public/asset.txt': asset,
    'build/Release/nyala_fdpass.node': await readFile(addonFile),
  }
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(src, name)), { recursive: true })
    await writeFile(path.join(src, name), content)
  }
  // nyala pack takes the production packages as Node finds them, through this link
  await symlink(path.join(projectRoot, 'node_modules'), path.join(src, 'node_modules'), 'dir')
  return packBundle(src, out)
}

/** Content directories (sha256 names) in `cacheDir`, but those in `others` (other modules' contents). */
const contentDirs = async (cacheDir, others) =>
  (await readdir(cacheDir)).filter((n) => contentDir.test(n) && !others.has(n))

/** Distinct .node files (by inode) under `cacheDir` mapped into process `pid`. */
async function mappedAddons(pid, cacheDir) {
  const inodes = new Set()
  for (const line of (await readFile(`/proc/${pid}/maps`, 'utf8')).split('\n')) {
    const m = /^\S+ \S+ \S+ \S+ (\d+)\s+(\/.*)$/.exec(line)
    if (m?.[2]?.startsWith(cacheDir) && /\.node( \(deleted\))?$/.test(m[2])) inodes.add(m[1])
  }
  return inodes.size
}

/** Opens a WebSocket; `echo(text)` resolves with its answer (or rejects after 10 s). */
async function openSocket(url) {
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  })
  return {
    echo: (text) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no echo of ${text} within 10 s`)), 10_000)
        ws.once('message', (data) => {
          clearTimeout(timer)
          resolve(data.toString())
        })
        ws.send(text)
      }),
    close: () =>
      new Promise((resolve) => {
        ws.once('close', resolve)
        ws.close(1000)
      }),
    kill: () => ws.terminate(),
  }
}

/**
 * @param {{ quick?: boolean, rounds?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  // --rounds N: N checkpoints after the baseline
  if (opts.rounds) settings.reloads = baseReload + opts.rounds * settings.every
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, packModule, addonFile], 'run "npm ci" (or "npm run build") first')
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir()
    const root = await makeRoot(path.join(work, 'root'), { 'admin.host': '127.0.0.1' })
    const modules = path.join(root, 'modules')
    const cacheDir = path.join(root, 'run', 'cache')
    progress('packing the sink module (two contents) with nyala pack')
    const contents = [
      await sinkBundle(path.join(work, 'src', 'a'), 'content a\n', path.join(work, 'a.zip')),
      await sinkBundle(path.join(work, 'src', 'b'), 'content b\n', path.join(work, 'b.zip')),
    ]
    const install = async (i) => {
      const tmp = path.join(work, 'sink.zip.next')
      await copyFile(contents[i % 2], tmp)
      await rename(tmp, path.join(modules, 'sink.zip'))
    }
    await install(0)
    await writeModule(path.join(work, 'src', 'probe'), probeIndex, path.join(modules, 'probe.zip'))
    progress('starting the host with --expose-gc')
    const host = await startHost(session, root, { nodeArgs: ['--expose-gc'] })
    const app = (p) => `http://127.0.0.1:${host.port}${p}`
    const admin = (p) => `http://127.0.0.1:${host.adminPort}${p}`

    const first = await request(app('/sink/'), { timeoutMs: 15_000 })
    if (first.status !== 200 || first.body?.v !== 1 || first.body.asset !== 'content a\n') {
      throw new Error(`GET /sink/ answered ${first.status} ${first.text.slice(0, 300)}`)
    }
    const pid = first.body.pid
    // the probe's bundle has its content directory too: only the sink's are counted
    const others = new Set(
      (await contentDirs(cacheDir, new Set())).filter((n) => n !== path.basename(first.body.dir)),
    )

    const measure = async (reloads) => {
      // the old generation drains and releases its cache directory just after the swap
      await delay(200)
      const res = await request(app('/probe'), { timeoutMs: 30_000 })
      if (res.status !== 200) throw new Error(`GET /probe answered ${res.status} ${res.text.slice(0, 200)}`)
      const m = res.body
      return {
        reloads,
        heapUsed: m.heapUsed,
        rss: m.rss,
        uncollected: m.created - m.collected - 1,
        dirs: (await contentDirs(cacheDir, others)).length,
        // scratch copies (.tmp-*) and directories being removed (.trash-*) left behind
        scratch: (await readdir(cacheDir)).filter((n) => /^\.(tmp|trash)-/.test(n)).length,
        addons: await mappedAddons(pid, cacheDir),
      }
    }

    const load = startLoad(session, {
      url: app('/sink/'),
      connections: settings.connections,
      rate: settings.rate,
    })
    const points = []
    const sockets = { opened: 0, failed: 0, errors: [] }
    const reloadFailures = []
    let maxDirs = 0
    progress(`${settings.reloads} reloads alternating two contents under ${settings.rate} req/s`)
    try {
      for (let i = 1; i <= settings.reloads; i++) {
        opts.signal?.throwIfAborted()
        // a socket opened on the generation before this reload stays on it across the reload
        let socket
        if (i % settings.socketEvery === 0) {
          sockets.opened++
          try {
            socket = await openSocket(`ws://127.0.0.1:${host.port}/sink/ws`)
            const before = await socket.echo('before')
            if (before !== `${i}:before`) throw new Error(`echo before reload ${i}: ${before}`)
          } catch (err) {
            sockets.failed++
            if (sockets.errors.length < 3) sockets.errors.push(err.message)
            socket?.kill()
            socket = undefined
          }
        }
        await install(i)
        const res = await requestSettled(admin('/modules/sink/reload?force=true'), {
          method: 'POST',
          timeoutMs: 30_000,
        })
        if (res.status !== 200 || res.body?.result !== 'reloaded') {
          reloadFailures.push(`${i}: ${res.status ?? res.error?.message} ${res.text?.slice(0, 200) ?? ''}`)
          if (reloadFailures.length > 5) throw new Error(`reloads failed: ${reloadFailures.join(' | ')}`)
        }
        if (socket) {
          try {
            const after = await socket.echo('after')
            if (after !== `${i}:after`) throw new Error(`echo after reload ${i}: ${after}`)
            await socket.close()
          } catch (err) {
            sockets.failed++
            if (sockets.errors.length < 3) sockets.errors.push(err.message)
            socket.kill()
          }
        }
        maxDirs = Math.max(maxDirs, (await contentDirs(cacheDir, others)).length)
        if (i === baseReload || i % settings.every === 0 || i === settings.reloads) {
          if (points.at(-1)?.reloads === i) continue
          const p = await measure(i)
          points.push(p)
          progress(
            `${i} reloads: heap ${mb(p.heapUsed)} MB, ${p.dirs} cache dir(s), ${p.addons} addon mapping(s), ` +
              `${p.uncollected} old generation(s) alive`,
          )
        }
      }
    } finally {
      await load.finish()
    }
    const expected = settings.reloads + 1 - reloadFailures.length
    const last = await request(app('/sink/'), { timeoutMs: 15_000 })
    if (last.status !== 200 || last.body?.v !== expected) {
      throw new Error(`after ${settings.reloads} reloads GET /sink/ answered ${last.text.slice(0, 300)}`)
    }
    await host.stop()
    const c = load.counts
    const failed =
      c.refused + c.reset + c.timeout + c.otherError + Object.values(c.status).reduce((a, b) => a + b, 0)
    return report(settings, Boolean(opts.quick), {
      points,
      requests: c.ok + failed,
      failed,
      counts: c,
      sockets,
      reloadFailures,
      maxDirs,
      errors: host.errors,
      last: last.body,
    })
  })
}

function report(settings, quickRun, r) {
  const base = r.points.find((p) => p.reloads === baseReload) ?? r.points[0]
  const end = r.points.at(-1)
  const table = r.points.map((p) => ({
    reloads: p.reloads,
    'heap MB': mb(p.heapUsed),
    'rss MB': mb(p.rss),
    'heap delta MB': mb(p.heapUsed - base.heapUsed),
    'cache dirs': p.dirs,
    'addon mappings': p.addons,
    'old gens alive': p.uncollected,
  }))
  const growth = end.heapUsed - base.heapUsed
  const met = (ok) => (ok ? 'met' : 'NOT met')
  const flat = growth < flatHeapBytes
  const lossless = r.failed === 0 && r.sockets.failed === 0 && r.reloadFailures.length === 0
  const dirsOk = r.maxDirs <= 2 && end.dirs === 1 && end.scratch === 0
  const addonOk = r.points.every((p) => p.addons === 1)
  const notes = [
    `failed requests: ${r.failed} of ${r.requests} (target 0), failed reloads ${r.reloadFailures.length}, ` +
      `WebSockets across a reload ${r.sockets.opened - r.sockets.failed} of ${r.sockets.opened} echoed on their ` +
      `generation before and after: ${met(lossless)}`,
    `heap after GC at reload ${base.reloads} ${mb(base.heapUsed)} MB, at reload ${end.reloads} ${mb(end.heapUsed)} MB: ` +
      `grew ${mb(growth)} MB (target < ${mb(flatHeapBytes)} MB): ` +
      (quickRun ? 'quick run, too short to judge' : met(flat)),
    `content directories in the cache: at most ${r.maxDirs} after any reload, ${end.dirs} at the end ` +
      `(target <= 2, the distinct contents; 1 once drained), ${end.scratch} scratch or trash ` +
      `directories left (target 0): ${met(dirsOk)}`,
    `native addon files mapped: ${[...new Set(r.points.map((p) => p.addons))].join(', ')} at every checkpoint ` +
      `(target 1): ${met(addonOk)}`,
    `${settings.reloads} reloads alternating two contents under ${settings.rate} req/s over ` +
      `${settings.connections} keep-alive connections; old generations alive after GC at the end: ` +
      `${end.uncollected}; the last generation served v ${r.last.v} (asset ${JSON.stringify(r.last.asset)})`,
  ]
  if (r.sockets.errors.length > 0) notes.push(`WebSocket errors: ${r.sockets.errors.join(' | ')}`)
  if (r.reloadFailures.length > 0) notes.push(`reload failures: ${r.reloadFailures.join(' | ')}`)
  if (r.errors.length > 0) notes.push(`host error log lines: ${r.errors.join(' | ')}`)
  return {
    name: 'reload-kitchen-sink',
    table,
    notes,
    summary: {
      settings,
      requests: r.requests,
      failedRequests: r.failed,
      failedReloads: r.reloadFailures.length,
      sockets: { opened: r.sockets.opened, failed: r.sockets.failed },
      heapGrowthBytes: growth,
      flat: quickRun ? undefined : flat,
      maxDirs: r.maxDirs,
      endDirs: end.dirs,
      endScratch: end.scratch,
      addonMappings: r.points.map((p) => p.addons),
      uncollected: end.uncollected,
      targetsMet: { lossless, flat: quickRun ? undefined : flat, dirs: dirsOk, addon: addonOk },
      points: r.points,
    },
  }
}

/** MB with two decimals: the growth judged is a few MB. */
const mb = (bytes) => mbOf(bytes, 2)
