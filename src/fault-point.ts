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

/**
 * Kills the process when `NYALA_FAULT_KILL_AT` is `step`, or `step:module`
 * for the step of that module alone (a transaction commits several).
 */
export function faultPoint(step: string, module?: string): void {
  if (killAt === undefined) return
  if (killAt === step || (module !== undefined && killAt === `${step}:${module}`))
    process.kill(process.pid, 'SIGKILL')
}
