// pm2 (the devDependency) for bench/cluster.js, with its own PM2_HOME in a temp dir so it never
// meets a pm2 daemon of the user's. `pm2 start` daemonizes a "God" process outside our process
// groups: every pid it reports is adopted into the Session (an abort SIGKILLs them), and close()
// runs `pm2 kill` with that PM2_HOME, then waits until the daemon and every worker are gone.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { pidGone, projectRoot } from './common.js'

const pm2Bin = path.join(
  path.dirname(createRequire(path.join(projectRoot, 'package.json')).resolve('pm2/package.json')),
  'bin',
  'pm2',
)

/** Whether `pid` runs pm2's daemon or the bench app (the pm2 workers' command line names it). */
function isPm2Process(pid) {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return cmdline.startsWith('PM2 ') || cmdline.includes('cluster-app.js')
  } catch {
    return false
  }
}

/** A pm2 whose home is a new temp dir of `session`. */
export async function startPm2(session) {
  const home = await session.tempDir('nyala-bench-pm2-')
  const known = new Set()
  /** Every pid pm2 reported in this run (the daemon, every worker, replaced ones too). */
  const seen = new Set()
  let closed
  const adopt = (pid) => {
    if (Number.isInteger(pid) && pid > 0 && !known.has(pid)) {
      known.add(pid)
      seen.add(pid)
      session.adopt(pid)
    }
  }

  /** `pm2 <args>` to completion (bounded); resolves { code, stdout, stderr, ms }. */
  const pm2 = async (args, { env = {}, timeoutMs = 60_000 } = {}) => {
    const t0 = performance.now()
    const group = session.spawnNode([pm2Bin, ...args], {
      cwd: home,
      env: { PM2_HOME: home, ...env },
    })
    let stdout = ''
    let stderr = ''
    group.child.stdout.on('data', (d) => {
      stdout += d
    })
    group.child.stderr.on('data', (d) => {
      stderr += d
    })
    const timer = setTimeout(() => session.signalGroup(group, 'SIGKILL'), timeoutMs)
    const { code, signal } = await group.exitedPromise
    clearTimeout(timer)
    session.groups.delete(group)
    await adoptDaemon()
    return { code: code ?? signal, stdout, stderr, ms: performance.now() - t0 }
  }

  const adoptDaemon = async () => {
    try {
      adopt(Number((await readFile(path.join(home, 'pm2.pid'), 'utf8')).trim()))
    } catch {
      // no daemon yet
    }
  }

  const check = (result, what) => {
    if (result.code !== 0)
      throw new Error(`pm2 ${what} failed (${result.code}): ${result.stdout}\n${result.stderr}`)
    return result
  }

  /** Every process pm2 lists (adopted, so an abort kills them too). */
  const jlist = async () => {
    const { stdout } = check(await pm2(['jlist']), 'jlist')
    const list = JSON.parse(stdout.slice(stdout.indexOf('[')))
    for (const p of list) adopt(p.pid)
    return list
  }

  return {
    home,
    seen,
    /** `pm2 start <script> -i <instances> --name <name>` with `env` for the app. */
    start: async (script, { name, instances, env }) =>
      check(await pm2(['start', script, '-i', String(instances), '--name', name], { env }), `start ${name}`),
    /** `pm2 reload <name>`: its workers restarted one at a time; resolves with its { code, ms }. */
    reload: (name) => pm2(['reload', name]),
    /** The pids of `name`'s workers that pm2 says are online. */
    async workerPids(name) {
      return (await jlist())
        .filter((p) => p.name === name && p.pm2_env?.status === 'online' && p.pid > 0)
        .map((p) => p.pid)
    },
    /** The daemon's pid (the cluster primary of every app). */
    async daemonPid() {
      return Number((await readFile(path.join(home, 'pm2.pid'), 'utf8')).trim())
    },
    /** `pm2 kill`; then waits for every pid pm2 reported to be gone. Resolves the pids left (SIGKILLed). */
    async close() {
      if (closed) return closed
      closed = []
      // a pid pm2 replaced is gone: forget it before the number can be given to another process
      const forgetFinished = () => {
        for (const pid of known) {
          if (pidGone(pid) || !isPm2Process(pid)) {
            known.delete(pid)
            session.pids.delete(pid)
          }
        }
      }
      forgetFinished()
      await jlist().catch(() => {})
      await pm2(['kill'], { timeoutMs: 30_000 })
      const deadline = performance.now() + 10_000
      while (performance.now() < deadline && [...known].some((pid) => !pidGone(pid))) await delay(50)
      // pids wrap (pid_max may be 32768): only a process that is still pm2's or the app's is ours
      const left = [...known].filter((pid) => !pidGone(pid) && isPm2Process(pid))
      for (const pid of left) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone meanwhile
        }
      }
      // what is gone now must not be signalled again by the session: its number may be reused
      forgetFinished()
      closed = left
      return left
    },
  }
}
