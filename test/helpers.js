// Shared helpers for the test suites: temporary roots, module sources, bundles
// made by `nyala pack`, `zip` and `jar`, and the real CLI on port 0.
import { execFile, spawn } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
export const cliPath = path.join(projectRoot, 'dist', 'cli.js')
const run = promisify(execFile)

/** A fresh root with `config/` and `modules/`; removed by `t.after`. */
export async function makeRoot(t, properties = 'port=0\nhost=127.0.0.1\n') {
  const root = await mkdtemp(path.join(tmpdir(), 'nyala-test-'))
  await mkdir(path.join(root, 'modules'))
  await mkdir(path.join(root, 'config'))
  await mkdir(path.join(root, 'src'))
  // any free port for the admin API too, so suites running side by side never collide on 8081
  if (properties !== null && !/^admin\.port=/m.test(properties)) properties = `admin.port=0\n${properties}`
  if (properties !== null) await writeFile(path.join(root, 'config', 'impala.properties'), properties)
  t?.after(async () => {
    // hosts of this root go first: a host still writing into run/ makes rm fail
    await Promise.all([...(hostsOf.get(root) ?? [])].map((child) => killAndWait(child)))
    hostsOf.delete(root)
    // never throw here: a failing after-hook skips the hooks after it, and those kill processes
    await rm(root, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 }).catch(() => {})
  })
  return root
}

/** Hosts started by `startHost`, by root, so `makeRoot`'s clean-up can stop them first. */
const hostsOf = new Map()

async function killAndWait(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))])
}

/** Writes files (name -> content) under `dir`, making folders as needed. */
export async function writeFiles(dir, files) {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name)
    await mkdir(path.dirname(file), { recursive: true })
    await writeFile(file, content)
  }
  return dir
}

/** A module.properties text from an object. */
export function manifest(fields = {}) {
  return `${Object.entries({ version: '1.0.0', ...fields })
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`
}

/**
 * Writes a module source directory under `<root>/src/<name>` with a register
 * that answers `GET <prefix>/` with `{ module, generation, ... }` unless
 * `files['index.js']` is given.
 */
export async function moduleSource(root, name, { fields = {}, files = {} } = {}) {
  const dir = path.join(root, 'src', name)
  await writeFiles(dir, {
    'module.properties': manifest(fields),
    'index.js': `module.exports = { async register (app, ctx) { app.get('/', async () => ({ module: ctx.name, generation: ctx.generation, version: ctx.version })) } }\n`,
    ...files,
  })
  return dir
}

/** Packs with the project's own CLI (`nyala pack`). */
export async function packWithNyala(dir, out) {
  await run(process.execPath, [cliPath, 'pack', dir, '-o', out])
  return out
}

/** Packs with the system `zip -r` (adds directory entries). */
export async function packWithZip(dir, out) {
  await run('zip', ['-q', '-r', out, '.'], { cwd: dir })
  return out
}

/** Packs with the JDK's `jar cf` (adds META-INF/MANIFEST.MF). */
export async function packWithJar(dir, out) {
  await run('jar', ['cf', out, '-C', dir, '.'])
  return out
}

export const modulesOf = (root) => path.join(root, 'modules')

/** A bundle of `name` answering `{ generation, tag }` at its prefix, packed into <root>/src (not deployed). */
export async function taggedBundle(root, name, tag, fields = {}) {
  const dir = await moduleSource(root, `${name}-${tag}`, {
    fields,
    files: {
      'index.js': `module.exports = { async register (app, ctx) { app.get('/', async () => ({ generation: ctx.generation, tag: ${JSON.stringify(tag)} })) } }\n`,
    },
  })
  return packWithNyala(dir, path.join(root, 'src', `${name}-${tag}.zip`))
}

/** Copies `bundle` to `dest` as deploy tools do: a hidden temporary name, then a rename. */
export async function placeByRename(bundle, dest) {
  const temp = path.join(path.dirname(dest), `.${path.basename(dest)}.part`)
  await copyFile(bundle, temp)
  await rename(temp, dest)
}

/**
 * Writes `<root>/src/<name>` (see moduleSource) and packs it with `nyala pack` into
 * modules/<file>; `opts.pack` packs it otherwise: `packWithZip` for a bundle `nyala pack` would
 * refuse (a syntax error), which the host must refuse itself.
 */
export async function deploy(root, name, opts = {}, file = `${name}.zip`) {
  const dir = await moduleSource(root, name, opts)
  return (opts.pack ?? packWithNyala)(dir, path.join(modulesOf(root), file))
}

/** Runs the CLI to completion; resolves { code, stdout, stderr }. */
export function runCli(args, { cwd = projectRoot, env = {}, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { cwd, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`nyala ${args.join(' ')} did not exit within ${timeoutMs} ms\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** Parses pino JSON lines, skipping anything that is not JSON. */
export function parseLogs(text) {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
}

/**
 * Starts `nyala start --root <root>` (port 0 from the root's config unless
 * args say otherwise) and resolves once it listens, with its port, its log
 * records so far (`logs()`), and `stop(signal)` that waits for the exit.
 * The process is killed in `t.after` if the test did not stop it. `env` adds
 * environment variables (NYALA_FAULT_KILL_AT, say).
 */
export async function startHost(t, root, args = [], { timeoutMs = 20_000, env } = {}) {
  const child = spawn(process.execPath, [cliPath, 'start', '--root', root, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ? { ...process.env, ...env } : process.env,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  if (!hostsOf.has(root)) hostsOf.set(root, new Set())
  hostsOf.get(root).add(child)
  t?.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let adminPort
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`host did not listen in ${timeoutMs} ms\n${stdout}\n${stderr}`)),
      timeoutMs,
    )
    const check = () => {
      const rec = parseLogs(stdout).find((r) => typeof r.port === 'number' && /^listening/.test(r.msg))
      if (rec) {
        clearTimeout(timer)
        child.stdout.off('data', check)
        adminPort = rec.adminPort
        resolve(rec.port)
      }
    }
    child.stdout.on('data', check)
    exited.then(({ code }) => {
      clearTimeout(timer)
      reject(new Error(`host exited with ${code} before listening\n${stdout}\n${stderr}`))
    })
  })
  return {
    child,
    port,
    adminPort,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    admin: (p) => `http://127.0.0.1:${adminPort}${p}`,
    logs: () => parseLogs(stdout),
    stdout: () => stdout,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}

/**
 * One GET on a (keep-alive) `agent` (false: a connection of its own); resolves { status, body
 * (parsed JSON when it parses), reused, connection (the response's header) } or { error }.
 * Never rejects: a load loop counts failures instead of stopping.
 */
export function agentGet(agent, url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, timeout: 15_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => {
        let body
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
        resolve({
          status: res.statusCode,
          body,
          reused: req.reusedSocket,
          connection: res.headers.connection,
        })
      })
      res.on('error', (error) => resolve({ error }))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)))
    req.on('error', (error) => resolve({ error }))
  })
}

/**
 * Keep-alive load: one connection per lane, each cycling through its URLs with sequential
 * requests 5 ms apart, for at most `ms`. `results` fills as the answers come
 * (`{ url, lane, ...agentGet }`, in order within a lane); `stop()` lets each lane make `tail`
 * more requests, then resolves the results. The agents are destroyed by `t.after`.
 *
 * Bounded by time, not by a count of requests: a count runs out early on a fast machine while
 * what the test waits for (reloads, an upgrade) takes long on a loaded one, and the load has
 * then stopped before it ("every lane ends on the new code" failed that way).
 */
export function keepAliveLoad(t, lanes, { ms = 120_000, tail = 0 } = {}) {
  const agents = lanes.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }))
  t.after(() => {
    for (const agent of agents) agent.destroy()
  })
  let stopped = false
  const results = []
  const deadline = Date.now() + ms
  const loops = lanes.map(async (urls, lane) => {
    let after = 0
    for (let n = 0; Date.now() < deadline; n++) {
      if (stopped && after++ >= tail) break
      const url = urls[n % urls.length]
      results.push({ url, lane, ...(await agentGet(agents[lane], url)) })
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })
  return {
    results,
    async stop() {
      stopped = true
      await Promise.all(loops)
      return results
    },
  }
}

/**
 * GETs `url` and keeps its body as the pieces it came in (the chunks of a chunked or streamed
 * response, as text): { status, headers, chunks }.
 */
export function getChunks(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        const chunks = []
        res.setEncoding('utf8')
        res.on('data', (chunk) => chunks.push(chunk))
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, chunks }))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

/** GET or other request; resolves { status, headers, body (parsed JSON when JSON), text }. */
export async function request(url, init) {
  const res = await fetch(url, init)
  const text = await res.text()
  let body = text
  if ((res.headers.get('content-type') ?? '').includes('json')) body = JSON.parse(text)
  return { status: res.status, headers: res.headers, body, text }
}

// ---------------------------------------------------------------------------------------------
// Process upgrade: daemonized instances, pids, the shared log file

import { readFile as readText } from 'node:fs/promises'

/** True while a process with this pid exists. */
export function isAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/**
 * Kills `pid` with SIGKILL in `t.after` if it still runs. Only for pids the test
 * started itself (directly or through `nyala start --daemonize` / `nyala upgrade`).
 */
export function killAfter(t, pid) {
  t.after(() => {
    if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL')
  })
}

/** Polls `check` every 50 ms until it returns a truthy value; rejects after `timeoutMs` naming `what`. */
export async function waitUntil(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** The pino records of `<root>/nyala.log` (the log of daemonized instances). */
export async function daemonLogs(root) {
  try {
    return parseLogs(await readText(path.join(root, 'nyala.log'), 'utf8'))
  } catch {
    return []
  }
}

/**
 * `nyala start --root <root> --daemonize ...args`: resolves with the daemon's pid and
 * url once it serves; the daemon is killed in `t.after` if the test leaves it running.
 */
export async function startDaemon(t, root, args = []) {
  // generous: on shared cores a start has been seen to take over 20 s
  const res = await runCli(['start', '--root', root, '--daemonize', ...args], {
    cwd: root,
    timeoutMs: 90_000,
  })
  const m = /pid (\d+) serving on (http:\/\/\S+)/.exec(res.stdout)
  if (m) killAfter(t, Number(m[1]))
  if (res.code !== 0 || !m)
    throw new Error(`daemonized start failed (${res.code})\n${res.stdout}\n${res.stderr}`)
  return { pid: Number(m[1]), url: (p) => `${m[2]}${p}`, port: Number(new URL(m[2]).port) }
}

/** A module answering `GET <prefix>/` with the pid of the process that serves it. */
export const pidModuleFiles = {
  'index.js': `module.exports = { async register (app) { app.get('/', async () => ({ pid: process.pid })) } }\n`,
}

// ---------------------------------------------------------------------------------------------
// Bundles with real registry packages, copied from the project's own node_modules (no network)

import { existsSync } from 'node:fs'
import { cp, readFile as readJson } from 'node:fs/promises'

/**
 * Copies the packages `names` and their `dependencies`, transitively, from the project's
 * node_modules (installed by `npm ci` as devDependencies) into `<dir>/node_modules`, in the
 * layout npm installed them (a package nested in another's node_modules comes with it);
 * returns the package names copied.
 */
export async function copyPackages(dir, names) {
  const top = path.join(projectRoot, 'node_modules')
  const copied = new Set()
  const seen = new Set()
  const queue = names.map((name) => ({ name, from: path.join(top, name) }))
  while (queue.length > 0) {
    const { name, from } = queue.shift()
    if (seen.has(from)) continue
    seen.add(from)
    const nested = path.relative(top, from).includes(`${path.sep}node_modules${path.sep}`)
    if (!nested) await cp(from, path.join(dir, 'node_modules', name), { recursive: true })
    copied.add(name)
    const pkg = JSON.parse(await readJson(path.join(from, 'package.json'), 'utf8'))
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      // as Node resolves: the package's own node_modules first, then the top level
      const own = path.join(from, 'node_modules', dep)
      queue.push({ name: dep, from: existsSync(own) ? own : path.join(top, dep) })
    }
  }
  return [...copied]
}

/** Rewrites a zip entry by entry through `edit(entries)` (a Map name -> Buffer) into `out` (jszip, deflated). */
export async function rewriteZip(file, out, edit) {
  const { default: JSZip } = await import('jszip')
  const { mkdir: makeDir, readFile: read, writeFile: write } = await import('node:fs/promises')
  const zip = await JSZip.loadAsync(await read(file))
  const entries = new Map()
  for (const f of Object.values(zip.files)) if (!f.dir) entries.set(f.name, await f.async('nodebuffer'))
  edit(entries)
  const next = new JSZip()
  for (const [name, content] of entries) next.file(name, content)
  await makeDir(path.dirname(out), { recursive: true })
  await write(out, await next.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' }))
  return out
}
