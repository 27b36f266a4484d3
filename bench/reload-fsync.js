// What crash-safe commits cost (issue 14 part 5): a module reloaded by dropping `solo.zip.tmp`
// beside its bundle on two hosts side by side, one with `auto.reload.fsync=true` (the default: the
// new bundle's data is flushed before its rename, the directories after) and one with
// `auto.reload.fsync=false`. Per bundle size: the time from the .tmp's rename to the first answer
// of the new code, and the host's own reload time (check to swap, from its log), medians, and the
// ratio fsync on / off. The two hosts take turns (which one goes first alternates), so the noise of
// a shared machine falls on both alike (/work/shared/NOTES.md, "Measuring on these machines").
import { randomBytes } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  assertBuilt,
  cliPath,
  makeRoot,
  medianOf,
  packBundle,
  packModule,
  round,
  startServer,
  versionPoller,
  withSession,
  writeModuleSource,
} from './common.js'

const full = { sizes: [1024, 8 * 1024 * 1024, 32 * 1024 * 1024], samples: 9 }
const quick = { sizes: [1024, 1024 * 1024], samples: 2 }
/** Pause after the hidden write, before the rename: the write's own events are handled by then. */
const writeQuietMs = 50
/** Pause between samples: the commit's events and the old generation's drain are over by then. */
const sampleGapMs = 150

const label = (bytes) => (bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MB` : `${bytes / 1024} KB`)

/**
 * @param {{ quick?: boolean, rounds?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts
 *   rounds: measured reloads per host and size
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.rounds) settings.samples = opts.rounds
  const progress = opts.progress ?? (() => {})
  assertBuilt([cliPath, packModule])
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir('nyala-bench-fsync-')
    const table = []
    const notes = []
    const summary = {}
    for (const size of settings.sizes) {
      opts.signal?.throwIfAborted()
      // incompressible: the bundle on disk is as big as its payload, and all of it is flushed
      const payload = randomBytes(size)
      const hosts = []
      for (const fsync of [true, false]) {
        const root = await makeRoot(path.join(work, `${size}-${fsync ? 'on' : 'off'}`), {
          'auto.reload.modules': true,
          'auto.reload.monitoring.type': 'tmpfile',
          'auto.reload.fsync': fsync,
          'auto.reload.drain.timeout': 5,
        })
        await writeFile(path.join(root, 'modules', 'solo.zip'), await bundle(work, 0, payload))
        const reloaded = []
        const server = await startServer(
          session,
          `nyala (fsync ${fsync})`,
          [cliPath, 'start', '--root', root],
          {
            cwd: root,
            readyTimeoutMs: 60_000,
            onRecord: (r) => {
              if (typeof r.msg === 'string' && r.msg.startsWith('reloaded')) reloaded.push(r)
            },
          },
        )
        hosts.push({
          fsync,
          root,
          server,
          reloaded,
          poller: versionPoller(server.port, '/solo'),
          wall: [],
          host: [],
        })
      }
      progress(`${label(size)}: ${settings.samples} reloads on each host (+1 unmeasured)`)
      try {
        for (let i = 0; i <= settings.samples; i++) {
          const bytes = await bundle(work, i + 1, payload)
          const order = i % 2 === 0 ? hosts : [...hosts].reverse()
          for (const h of order) {
            opts.signal?.throwIfAborted()
            const modules = path.join(h.root, 'modules')
            const hidden = path.join(modules, `.solo.${randomBytes(4).toString('hex')}.partial`)
            await writeFile(hidden, bytes)
            await delay(writeQuietMs)
            const seen = h.reloaded.length
            const t0 = performance.now()
            await rename(hidden, path.join(modules, 'solo.zip.tmp'))
            await h.poller.waitFor(i + 1, 60_000, h.server.describe)
            const t1 = performance.now()
            const deadline = performance.now() + 2000
            while (h.reloaded.length === seen && performance.now() < deadline) await delay(5)
            if (i > 0) {
              h.wall.push(t1 - t0)
              if (typeof h.reloaded[seen]?.ms === 'number') h.host.push(h.reloaded[seen].ms)
            }
            await delay(sampleGapMs)
          }
        }
      } finally {
        for (const h of hosts) {
          h.poller.close()
          await h.server.stop()
        }
      }
      const [on, off] = hosts
      const figures = (h) => ({ wallMs: round(medianOf(h.wall), 1), hostMs: round(medianOf(h.host), 1) })
      const row = { on: figures(on), off: figures(off) }
      const ratio = round(row.on.wallMs / row.off.wallMs, 2)
      summary[label(size)] = {
        ...row,
        ratio,
        samples: { on: on.wall.map((x) => round(x, 1)), off: off.wall.map((x) => round(x, 1)) },
      }
      for (const h of hosts) {
        table.push({
          section: 'trigger to new code (.tmp rename to first answer), medians',
          bundle: label(size),
          fsync: h.fsync ? 'on' : 'off',
          'trigger->new ms': figures(h).wallMs,
          'host reload ms': figures(h).hostMs,
          samples: h.wall.length,
        })
      }
      notes.push(
        `${label(size)}: fsync on/off ratio of trigger->new ${ratio} (medians ${row.on.wallMs} / ${row.off.wallMs} ms; host reload ${row.on.hostMs} / ${row.off.hostMs} ms)`,
      )
    }
    notes.push(`load average (1 min) at the end: ${round(os.loadavg()[0], 2)}; ${os.cpus().length} cores`)
    return { name: 'reload-fsync', table, notes, summary }
  })
}

/** The bundle of version `v`: answers `{ v }`, carries the payload. */
async function bundle(work, v, payload) {
  const src = path.join(work, 'src', `solo-${v}`)
  await writeModuleSource(
    src,
    `module.exports = { async register (app) { app.get('/', async () => ({ v: ${v} })) } }\n`,
    {
      files: { 'payload.bin': payload },
    },
  )
  return readFile(await packBundle(src, path.join(work, 'versions', `solo-${v}.zip`)))
}
