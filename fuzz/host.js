// A real host for the end-to-end cases: a temporary root with the fuzz module deployed,
// the staging directory and `.tmp` files watched, an admin token, small limits.

import { spawn } from 'node:child_process'
import { mkdir } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { packDirectory } from '../dist/bundle/pack.js'
import { cliPath, parseLogs, startHost, writeFiles } from '../test/helpers.js'
import { baseFiles } from './bundle-target.js'

export const adminToken = 'fuzz-token-0123456789'

export async function startFuzzHost(dir, name, extra = '') {
  const root = path.join(dir, name)
  const props = [
    'port=0',
    'host=127.0.0.1',
    'admin.port=0',
    `admin.token=${adminToken}`,
    'auto.reload.modules=true',
    'auto.reload.monitoring.type=default, tmpfile, stagingDirectory',
    'auto.reload.settle.ms=50',
    'auto.reload.settle.timeout=1',
    'log.format=json',
    extra || 'bundle.max.bytes=1M',
  ].join('\n')
  await writeFiles(root, { 'config/impala.properties': `${props}\n` })
  await mkdir(path.join(root, 'staging'), { recursive: true })
  const src = await writeFiles(path.join(root, 'src', 'fuzzmod'), baseFiles)
  await packDirectory(src, { out: path.join(root, 'modules', 'fuzzmod.zip') })
  const host = await startHost(undefined, root, [], { timeoutMs: 60_000 })
  return { ...host, root, upgradeSocket: path.join(root, 'run', 'upgrade.sock') }
}

/** One plain GET; resolves { status, body } or { error }; never rejects. */
export function get(url, { headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve) => {
    const req = http.get(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => {
        text += d
      })
      res.on('end', () => {
        let body = text
        try {
          body = JSON.parse(text)
        } catch {}
        resolve({ status: res.statusCode, body })
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', (error) => resolve({ error }))
  })
}

/**
 * Whether the host is still up and its module still serves the base bundle's code
 * (generation and answer), and its admin API answers: the invariant every target checks.
 */
export async function stillServing(host) {
  if (host.child.exitCode !== null || host.child.signalCode !== null) {
    return `the host exited (${host.child.exitCode ?? host.child.signalCode})\n${host.stderr().slice(-2000)}`
  }
  const mod = await get(host.url('/fuzzmod/'))
  if (mod.status !== 200 || mod.body?.ok !== true) {
    return `GET /fuzzmod/ answered ${mod.status ?? mod.error?.message}: ${JSON.stringify(mod.body)?.slice(0, 300)}`
  }
  const health = await get(host.admin('/health'))
  if (health.status !== 200) return `GET /health answered ${health.status ?? health.error?.message}`
  return undefined
}

/**
 * `nyala start --upgrade` in a root of its own: a successor that has loaded its modules
 * and waits on the upgrade socket for a running instance's listeners (none comes but the
 * fuzzer). Resolves once it waits, with its socket path and its log records.
 */
export async function startSuccessor(dir, name) {
  const root = path.join(dir, name)
  const props = [
    'port=0',
    'host=127.0.0.1',
    'admin.port=0',
    'upgrade.wait.timeout=3600',
    'log.format=json',
  ].join('\n')
  await writeFiles(root, { 'config/impala.properties': `${props}\n` })
  const src = await writeFiles(path.join(root, 'src', 'fuzzmod'), baseFiles)
  await packDirectory(src, { out: path.join(root, 'modules', 'fuzzmod.zip') })
  const child = spawn(process.execPath, [cliPath, 'start', '--root', root, '--upgrade'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  const logs = () => parseLogs(stdout)
  const socket = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the successor did not wait in 60 s\n${stdout}\n${stderr}`)),
      60_000,
    )
    const check = () => {
      const rec = logs().find(
        (r) => typeof r.socket === 'string' && /^waiting for the running instance/.test(r.msg),
      )
      if (rec) {
        clearTimeout(timer)
        child.stdout.off('data', check)
        resolve(path.resolve(root, rec.socket))
      }
    }
    child.stdout.on('data', check)
    exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`the successor exited with ${code}\n${stdout}\n${stderr}`))
    })
  })
  return {
    child,
    socket,
    logs,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}
