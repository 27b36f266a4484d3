import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/**
 * Test-only fault injection: when the environment variable
 * `NYALA_FAULT_KILL_AT` names a step, the process kills itself with SIGKILL
 * on reaching it, as a power cut or `kill -9` would stop it there. The tests
 * of crash-safe files (test/e2e-crash-safe.test.js) use it to stop a reload
 * at each of its file operations. Read once at start-up: with the variable
 * unset, a fault point costs one comparison of a module constant.
 *
 * The steps are listed in docs/deploying.md ("Crash-safe files").
 */
const killAt: string | undefined = process.env.NYALA_FAULT_KILL_AT || undefined
const pauseAt: string | undefined = process.env.NYALA_FAULT_PAUSE_AT || undefined
const pauseDir: string | undefined = process.env.NYALA_FAULT_PAUSE_DIR || undefined

/**
 * Kills the process when `NYALA_FAULT_KILL_AT` is `step`, or `step:module`
 * for the step of that module alone (a transaction commits several).
 */
export function faultPoint(step: string, module?: string): void {
  if (killAt === undefined) return
  if (killAt === step || (module !== undefined && killAt === `${step}:${module}`))
    process.kill(process.pid, 'SIGKILL')
}

/**
 * Test-only: when `NYALA_FAULT_PAUSE_AT` is `step` (or `step:module`), the first time the step is
 * reached the caller waits there: it writes `<NYALA_FAULT_PAUSE_DIR>/paused-<step>` and resumes
 * once `resume-<step>` exists beside it. A test then makes a race happen at that exact point (a
 * file replaced while a commit is between its check and its rename) instead of hoping for it.
 * Unset, it costs one comparison.
 */
export async function faultPause(step: string, module?: string): Promise<void> {
  if (pauseAt === undefined || pauseDir === undefined || paused) return
  if (pauseAt !== step && !(module !== undefined && pauseAt === `${step}:${module}`)) return
  paused = true
  writeFileSync(path.join(pauseDir, `paused-${step}`), `${process.pid}\n`)
  while (!existsSync(path.join(pauseDir, `resume-${step}`))) await sleep(10)
}

let paused = false
