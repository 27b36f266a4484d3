import { type NyalaError, nyalaError } from '../errors.js'
import { type CodeOwner, liveOwners, stoppedOwners } from '../runtime/code-owner.js'
import type { Generation } from '../runtime/generation.js'
import type { SupervisedHost } from '../supervise/supervisor.js'
import type { CrashHost } from './reload-host.js'
import type { Reloader } from './reloader.js'

/**
 * The host's side of supervision: what a crash does to the modules. A restart
 * is a forced reload of the module from the bundle it runs (not a `.tmp` or
 * staged file waiting beside it) through the reload transaction, so its
 * dependents are rebuilt and, in overlap mode, nothing waits.
 */
export function crashActions(host: CrashHost, reloader: Reloader): SupervisedHost {
  return {
    log: host.log,
    live: () => liveOwners,
    stopped: () => stoppedOwners,
    runningGeneration(module) {
      const record = host.modules.get(module)
      return record?.state === 'running' ? record.generation?.number : undefined
    },
    countCrash(module) {
      const record = host.modules.get(module)
      if (!record) return 0
      record.crashes++
      return record.crashes
    },
    crashed(owner: CodeOwner, error: NyalaError, action: string) {
      reloader.events.emit({
        id: 0,
        phase: 'crashed',
        trigger: 'crash',
        modules: [owner.module],
        module: owner.module,
        generations: { [owner.module]: owner.generation },
        action,
        error: { code: error.code, message: error.message, at: new Date().toISOString() },
      })
    },
    async restart(module, generation) {
      const record = host.modules.get(module)
      // a shutdown stops every generation: one started now would outlive it
      if (!record?.bundle || host.closing) return undefined
      const file = record.file
      return reloader.transactions.run(
        [
          {
            name: module,
            kind: 'update',
            bundle: record.bundle,
            source: file,
            target: file,
            force: true,
            ifGeneration: generation,
          },
        ],
        'crash',
      )
    },
    fail: async (module, error, generation) =>
      host.closing ? undefined : takeDown(host, reloader, module, error, generation),
  }
}

/**
 * Fails a running module and, transitively, the modules that require it
 * (`NYALA_ERR_DEPENDENCY_FAILED`), as one swap of the dispatch table; then
 * drains and stops their generations. Modules that use it only as an optional
 * dependency keep serving with what they were given.
 */
async function takeDown(
  host: CrashHost,
  reloader: Reloader,
  module: string,
  error: NyalaError,
  generation: number,
): Promise<void> {
  const release = await reloader.locks.acquire(host.graph.closure([module]))
  const olds: Generation[] = []
  try {
    // a reload that replaced the crashed generation while this waited for the lock: the new one
    // did not crash, and is not failed for its predecessor
    if (host.modules.get(module)?.generation?.number !== generation) return
    const down = new Set<string>()
    for (const name of host.order) {
      const record = host.modules.get(name)
      if (record?.state !== 'running') continue
      const dependency =
        name === module
          ? undefined
          : record.bundle?.manifest.dependsOn.find((d) => d === module || down.has(d))
      if (name !== module && dependency === undefined) continue
      down.add(name)
      const gen = record.generation
      if (gen) {
        record.servedBefore += gen.served
        olds.push(gen)
      }
      record.generation = undefined
      host.fail(
        record,
        dependency === undefined
          ? error
          : nyalaError('NYALA_ERR_DEPENDENCY_FAILED', { module: name, dependency }),
      )
    }
    host.publish(down)
  } finally {
    release()
  }
  // dependents first, as a reload drains; bounded by auto.reload.drain.timeout
  const drain = (async () => {
    for (const gen of olds.reverse()) {
      await gen.waitIdle(host.options.autoReload.drainTimeoutMs)
      await gen.stop()
      host.log.info(
        { module: gen.name, generation: gen.number },
        `module ${gen.name} generation ${gen.number} stopped`,
      )
    }
  })()
  reloader.transactions.pending.add(drain)
  await drain.finally(() => reloader.transactions.pending.delete(drain))
}
