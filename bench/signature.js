// What checking a bundle's signature costs: a signed 3,000-file bundle opened the way the
// bundle reader's thread opens it (read, inflate, hash, manifest), with and without the
// signature check (sha256 of every entry, the canonical list, one Ed25519 verification),
// alternating in the same process. The check runs on the reader thread, so it adds to the
// reload's time, never to the serving thread's; the figure to watch is its share of opening.
import { generateKeyPairSync } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { assertBuilt, medianOf, percentileOf, projectRoot, round, withSession } from './common.js'

const dist = (p) => path.join(projectRoot, 'dist', p)
const full = { files: 3000, rounds: 15 }
const quick = { files: 300, rounds: 3 }

/** @param {{ quick?: boolean, rounds?: number, signal?: AbortSignal, progress?: (msg: string) => void }} opts */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.rounds) settings.rounds = opts.rounds
  const progress = opts.progress ?? (() => {})
  assertBuilt([dist('bundle/open-bundle.js'), dist('bundle/pack.js')])
  const { openBundle } = await import(dist('bundle/open-bundle.js'))
  const { packDirectory } = await import(dist('bundle/pack.js'))
  const { keyIdOf, rawPublicKey } = await import(dist('bundle/signing-key.js'))
  return withSession(opts.signal, async (session) => {
    const work = await session.tempDir()
    const src = path.join(work, 'big')
    progress(`writing ${settings.files} files`)
    const bytes = await writeFiles(src, settings.files)
    const { publicKey, privateKey } = generateKeyPairSync('ed25519')
    const raw = rawPublicKey(publicKey)
    const keyId = keyIdOf(raw)
    const file = await packDirectory(src, {
      out: path.join(work, 'big.zip'),
      sign: { keys: [{ key: privateKey, keyId }], sequence: 1 },
    })
    const trust = {
      required: true,
      threshold: 1,
      dir: work,
      keys: [
        {
          keyId,
          publicKey: raw.toString('base64url'),
          file: 'bench.pub',
          expires: undefined,
          revoked: false,
        },
      ],
    }
    const plain = []
    const verified = []
    await openBundle(file) // warm-up: file cache, JIT
    for (let i = 0; i < settings.rounds; i++) {
      if (opts.signal?.aborted) break
      progress(`round ${i + 1}/${settings.rounds}`)
      let t0 = performance.now()
      await openBundle(file)
      plain.push(performance.now() - t0)
      t0 = performance.now()
      const bundle = await openBundle(file, { trust })
      verified.push(performance.now() - t0)
      if (!bundle.signature) throw new Error('the bench bundle did not verify')
    }
    const section = `opening a signed bundle of ${settings.files} files (${round(bytes / 1024 / 1024, 1)} MiB inflated)`
    const row = (measure, values) => ({
      section,
      measure,
      samples: values.length,
      'median ms': round(medianOf(values), 1),
      'min ms': round(percentileOf(values, 0), 1),
      'max ms': round(percentileOf(values, 100), 1),
    })
    const extra = medianOf(verified) - medianOf(plain)
    const table = [
      row('open: read, inflate, hash, manifest', plain),
      row('open + signature check', verified),
      {
        section,
        measure: 'ratio with check / without',
        samples: plain.length,
        'median ms': round(medianOf(verified) / medianOf(plain), 2),
      },
    ]
    return {
      name: 'signature',
      table,
      notes: [
        `signature check: +${round(extra, 1)} ms median on ${settings.files} files (${round((extra / medianOf(verified)) * 100, 0)}% of opening), on the bundle reader's thread; synthetic files, ${settings.rounds} alternating rounds`,
      ],
      summary: {
        settings,
        bytes,
        plainMs: round(medianOf(plain), 2),
        verifiedMs: round(medianOf(verified), 2),
        extraMs: round(extra, 2),
      },
    }
  })
}

/** `count` deterministic JavaScript-like files of 1 to 9 KiB in nested folders; returns their total size. */
async function writeFiles(dir, count) {
  await mkdir(dir, { recursive: true })
  await writeFile(path.join(dir, 'module.properties'), 'version=1.0.0\n')
  await writeFile(path.join(dir, 'index.js'), 'module.exports = { register () {} }\n')
  let total = 0
  for (let i = 0; i < count; i++) {
    const folder = path.join(dir, 'node_modules', `pkg-${i % 60}`, `lib-${i % 7}`)
    await mkdir(folder, { recursive: true })
    const size = 1024 + ((i * 7919) % 8192)
    const line = `exports.f${i} = function (a, b) { return a + b * ${i} } // padding\n`
    const text = line.repeat(Math.ceil(size / line.length)).slice(0, size)
    total += text.length
    await writeFile(path.join(folder, `file-${i}.js`), text)
  }
  return total
}
