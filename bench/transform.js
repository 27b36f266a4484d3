// What ES modules and TypeScript cost at load time: a module of TypeScript files that imports
// ESM-only packages (chalk 5, nanoid 5, uuid 11's ES module build, from the project's
// devDependencies) is loaded from memory
// - cold: every file transformed on the loading thread at require time (esbuild transformSync),
// - ahead: transformed first without blocking the thread (esbuild's async transform, as a first
//   start and a reload do), then loaded: the blocking part is the load alone,
// - warm: again with unchanged files (the transform cache answers; a reload of unchanged files),
// against the baseline of the same module written as CommonJS (its own files not transformed; it
// requires the same packages), all in this process. Each round changes the module's own files (a
// comment) so they are cold; the packages do not change, so after the first round they come from
// the cache, as they would in a host.
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { assertBuilt, medianOf, projectRoot, round } from './common.js'

const dist = (p) => path.join(projectRoot, 'dist', p)
const packages = ['chalk', 'nanoid', 'uuid']
const full = { rounds: 15, files: 40 }
const quick = { rounds: 2, files: 5 }

/** N TypeScript files in a chain plus an index importing them and the packages; `tag` makes the content new. */
function tsSources(n, tag) {
  const files = {
    'package.json': JSON.stringify({ name: 'bench', type: 'module' }),
    'index.ts': `// ${tag}
import chalk from 'chalk'
import { nanoid } from 'nanoid'
import { v4 } from 'uuid'
import { value0 } from './lib/f0.js'
export function register (): { n: number; id: number; v: number; c: string } {
  return { n: value0(), id: nanoid().length, v: v4().length, c: chalk.red('x') }
}
`,
  }
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? `import { value${i + 1} } from './f${i + 1}.js'` : ''
    const call = i + 1 < n ? `value${i + 1}()` : '0'
    files[`lib/f${i}.ts`] = `// ${tag}
${next}
interface Shape${i} { kind: 'a' | 'b'; size: number; tags: readonly string[] }
const shapes${i}: Shape${i}[] = Array.from({ length: 8 }, (_, j): Shape${i} => ({ kind: j % 2 ? 'a' : 'b', size: j, tags: [] }))
export function area${i} (s: Shape${i}): number { return s.kind === 'a' ? s.size * s.size : s.size * 2 }
export function value${i} (): number { return shapes${i}.map(area${i}).reduce((a: number, b: number) => a + b, 0) + ${call} }
export class Store${i}<T> { #items = new Map<string, T>(); set (k: string, v: T): this { this.#items.set(k, v); return this } get (k: string): T | undefined { return this.#items.get(k) } }
`
  }
  return files
}

/** The same module as CommonJS: the baseline without transforms of its own (the packages are ES modules: cached). */
function cjsSources(n, tag) {
  const files = {
    'index.js': `// ${tag}
const chalk = require('chalk').default
const { nanoid } = require('nanoid')
const { v4 } = require('uuid')
const { value0 } = require('./lib/f0.js')
module.exports = { register () { return { n: value0(), id: nanoid().length, v: v4().length, c: chalk.red('x') } } }
`,
  }
  for (let i = 0; i < n; i++) {
    const next = i + 1 < n ? `const { value${i + 1} } = require('./f${i + 1}.js')` : ''
    const call = i + 1 < n ? `value${i + 1}()` : '0'
    files[`lib/f${i}.js`] = `// ${tag}
${next}
const shapes${i} = Array.from({ length: 8 }, (_, j) => ({ kind: j % 2 ? 'a' : 'b', size: j, tags: [] }))
function area${i} (s) { return s.kind === 'a' ? s.size * s.size : s.size * 2 }
function value${i} () { return shapes${i}.map(area${i}).reduce((a, b) => a + b, 0) + ${call} }
class Store${i} { #items = new Map(); set (k, v) { this.#items.set(k, v); return this } get (k) { return this.#items.get(k) } }
module.exports = { area${i}, value${i}, Store${i} }
`
  }
  return files
}

/**
 * @param {{ quick?: boolean, rounds?: number, progress?: (msg: string) => void }} opts
 */
export async function run(opts = {}) {
  const settings = { ...(opts.quick ? quick : full) }
  if (opts.rounds) settings.rounds = opts.rounds
  const progress = opts.progress ?? (() => {})
  assertBuilt([dist('loader/load-module.js')])
  const { openBundle } = await import(dist('bundle/open-bundle.js'))
  const { loadModuleCode, transformBundleAhead } = await import(dist('loader/load-module.js'))
  const { transformStats } = await import(dist('loader/transform.js'))
  const work = await mkdtemp(path.join(tmpdir(), 'nyala-bench-transform-'))
  try {
    const writeBundle = async (name, files, main) => {
      const dir = path.join(work, name)
      const all = { 'module.properties': `version=1.0.0\nmain=${main}\n`, ...files }
      for (const [file, content] of Object.entries(all)) {
        await mkdir(path.dirname(path.join(dir, file)), { recursive: true })
        await writeFile(path.join(dir, file), content)
      }
      for (const p of packages) {
        await cp(path.join(projectRoot, 'node_modules', p), path.join(dir, 'node_modules', p), {
          recursive: true,
        })
      }
      return openBundle(dir)
    }
    const timed = (fn) => {
      const t0 = performance.now()
      fn()
      return performance.now() - t0
    }
    const samples = { cold: [], aheadWait: [], aheadBlock: [], warm: [], cjs: [] }
    let transformedPerLoad = 0
    // round 0 warms esbuild's service (its first call starts a process) and V8
    for (let r = 0; r <= settings.rounds; r++) {
      progress(`round ${r} of ${settings.rounds}`)
      const cold = await writeBundle(`cold-${r}`, tsSources(settings.files, `cold ${r}`), 'index.ts')
      const before = transformStats.transformed
      const coldMs = timed(() => loadModuleCode(cold))
      transformedPerLoad = transformStats.transformed - before
      const warmMs = timed(() => loadModuleCode(cold))
      const ahead = await writeBundle(`ahead-${r}`, tsSources(settings.files, `ahead ${r}`), 'index.ts')
      const t0 = performance.now()
      await transformBundleAhead(
        ahead,
        [...ahead.files.keys()].filter((e) => e.startsWith('node_modules/')),
      )
      const waitMs = performance.now() - t0
      const blockMs = timed(() => loadModuleCode(ahead))
      const cjs = await writeBundle(`cjs-${r}`, cjsSources(settings.files, `cjs ${r}`), 'index.js')
      const cjsMs = timed(() => loadModuleCode(cjs))
      if (r === 0) continue
      samples.cold.push(coldMs)
      samples.warm.push(warmMs)
      samples.aheadWait.push(waitMs)
      samples.aheadBlock.push(blockMs)
      samples.cjs.push(cjsMs)
      for (const dir of await readdir(work)) await rm(path.join(work, dir), { recursive: true, force: true })
    }
    const base = medianOf(samples.cjs)
    const row = (name, list, note) => ({
      case: name,
      medianMs: round(medianOf(list), 2),
      perFileMs: round(medianOf(list) / (transformedPerLoad || 1), 3),
      vsCjs: round(medianOf(list) / base, 2),
      note,
    })
    const table = [
      row('cold: transformed at require time', samples.cold, 'the loading thread waits for esbuild'),
      row('ahead: async transform (not blocking)', samples.aheadWait, 'the thread serves meanwhile'),
      row('ahead: then the load (blocking)', samples.aheadBlock, 'what a start or reload blocks'),
      row('warm: unchanged files (cache)', samples.warm, 'a reload of unchanged files'),
      row('baseline: same module as CommonJS', samples.cjs, 'no transform'),
    ]
    return {
      name: 'transform',
      table,
      notes: [
        `${transformedPerLoad} files transformed per cold load (the module's own TypeScript files; the ES module files of chalk 5, nanoid 5 and uuid 11 come from the cache after round 0); perFileMs divides by that; medians of ${settings.rounds} rounds`,
      ],
      summary: {
        files: transformedPerLoad,
        coldMs: round(medianOf(samples.cold), 2),
        warmMs: round(medianOf(samples.warm), 2),
        aheadBlockMs: round(medianOf(samples.aheadBlock), 2),
        cjsMs: round(base, 2),
      },
    }
  } finally {
    await rm(work, { recursive: true, force: true })
  }
}
