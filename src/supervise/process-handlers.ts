import type { CrashOrigin, Supervisor } from './supervisor.js'

/**
 * Installs the process's `uncaughtException` and `unhandledRejection`
 * handlers: a module's error goes to the supervisor, anything else to
 * `onHostError` (the host's own error). Returns the function that removes them.
 */
export function installCrashHandlers(
  supervisor: Supervisor,
  onHostError: (err: unknown, origin: CrashOrigin) => void,
): () => void {
  const onException = (err: unknown, origin: string) => {
    const kind: CrashOrigin = origin === 'unhandledRejection' ? 'unhandledRejection' : 'uncaughtException'
    if (!supervisor.handle(err, kind)) onHostError(err, kind)
  }
  const onRejection = (reason: unknown) => {
    if (!supervisor.handle(reason, 'unhandledRejection')) onHostError(reason, 'unhandledRejection')
  }
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
  }
}
