import { Socket } from 'node:net'
import { bundleFromTransfer, errorFromWire, errorToWire, type WireError } from '../bundle/bundle-transfer.js'
import type { HostOptions } from '../config/host-options.js'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { NyalaHost } from '../host.js'
import { closeHandedConnections, createHttpServer } from '../http/listener.js'
import { Metrics } from '../http/metrics.js'
import { rememberDigests } from '../loader/code-cache.js'
import type { Logger } from '../logger.js'
import { monotonicMs } from '../monotonic-clock.js'
import { applyRecords, type RecordUpdate } from '../reload/apply-records.js'
import type { PlanItem } from '../reload/module-runtime.js'
import { newRecord } from '../runtime/module-record.js'
import { installCrashHandlers } from '../supervise/process-handlers.js'
import { ControlPipe } from './control-pipe.js'
import { type FromWorker, type ToWorker, type WorkerModuleView, workerEnv } from './protocol.js'
import { settleHeap } from './settle-heap.js'

/** What a worker keeps of a prepared reload until its COMMIT or ABORT. */
interface PreparedHere {
  readonly items: PlanItem[]
  readonly updates: (Omit<RecordUpdate, 'down'> & { down: NyalaError | undefined })[]
  readonly generations: Record<string, number>
}

/**
 * A worker process (`workers` > 1): a host that loads every module and serves
 * the connections its supervisor hands it, and runs the supervisor's reloads:
 * PREPARE starts the new generations beside the old ones, COMMIT swaps to
 * them, ABORT stops them. It watches nothing, writes no file into the deploy
 * paths and has no admin API: those are the supervisor's. Resolves with the
 * exit code once stopped.
 */
export async function runWorker(options: HostOptions, log: Logger, slot: number): Promise<number> {
  const host = new NyalaHost(options, log, { role: 'worker', startNumbers: startNumbersFromEnv() })
  // COMMIT, pings and their answers travel on the control pipe (fd 4), never behind a connection
  const control = new ControlPipe<ToWorker, FromWorker>(
    new Socket({ fd: 4, readable: true, writable: true }),
    (message) => onMessage(message),
  )
  const send = (message: FromWorker) => {
    if (message.t === 'pong' || message.t === 'committed' || message.t === 'conns') control.send(message)
    else if (process.connected) process.send?.(message)
  }
  const server = createHttpServer(host.dispatcher.handle, host.dispatcher.upgrade)
  // its figures reach GET /metrics through the supervisor, each series labelled with this slot
  const metrics = new Metrics(host.reloader.events, () => host.modules.values())
  const prepared = new Map<number, PreparedHere>()
  /** The connections handed to this worker and still open: a stop drains them first. */
  const sockets = new Set<Socket>()
  // the supervisor hands new connections to the worker with the fewest open: it learns the
  // counts from here, batched, so a connection costs no message of its own
  let received = 0
  // the supervisor keeps its own descriptor of each connection until it is reported here
  let got: number[] = []
  let reporting: NodeJS.Timeout | undefined
  const report = () => {
    reporting ??= setTimeout(() => {
      reporting = undefined
      send({ t: 'conns', received, open: sockets.size, got })
      got = []
    }, 25)
  }
  let stopping: Promise<number> | undefined
  let stopped: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => {
    stopped = resolve
  })

  let draining: Promise<void> | undefined
  // requests still arriving on kept-alive connections are answered, then those connections
  // close; started by `drain` while a reload may still run, or by the stop itself
  const drain = (graceMs: number) => (draining ??= closeHandedConnections(server, sockets, graceMs))

  const stop = (graceMs: number): Promise<number> => {
    stopping ??= (async () => {
      const deadline = Date.now() + graceMs
      // the modules stop after the connections, as a single process stops them after its listener
      await drain(graceMs)
      try {
        await host.close(Math.max(0, deadline - Date.now()))
      } catch (err) {
        log.error({ reason: reasonOf(err) }, 'worker stop failed')
      }
      server.closeAllConnections()
      clearTimeout(reporting)
      control.close()
      log.info({ worker: slot }, `worker ${slot} stopped`)
      stopped(0)
      return 0
    })()
    return stopping
  }

  const removeCrashHandlers = installCrashHandlers(host.supervisor, (err, origin) => {
    // the host's own error in a worker: the supervisor replaces the whole process
    const error = nyalaError('NYALA_ERR_HOST_CRASHED', { origin, reason: reasonOf(err) })
    log.fatal({ ...error.toJSON(), worker: slot, action: 'exit' }, error.message)
    process.exit(1)
  })
  // Ctrl-C reaches the whole process group: the supervisor decides how its workers stop
  process.on('SIGINT', () => {})
  process.on('SIGTERM', () => void stop(options.process.shutdownGraceMs).then((code) => process.exit(code)))

  const onMessage = (message: ToWorker, handle?: unknown) => {
    switch (message.t) {
      case 'conn': {
        const socket = handle as Socket | undefined
        if (!socket) return
        got.push(message.seq)
        received++
        report()
        if (stopping) {
          socket.destroy()
          return
        }
        sockets.add(socket)
        socket.once('close', () => {
          sockets.delete(socket)
          report()
        })
        server.emit('connection', socket)
        return
      }
      case 'ping':
        send({ t: 'pong', id: message.id })
        return
      case 'describe':
        send({
          t: 'described',
          id: message.id,
          rss: process.memoryUsage.rss(),
          inflight: views(host).reduce((n, m) => n + m.inflight, 0),
          modules: views(host),
        })
        return
      case 'stats': {
        const now = performance.now()
        const modules = Object.fromEntries(
          [...host.modules.values()].map((r) => [r.name, r.stats.minuteParts(now)]),
        )
        send({ t: 'stats', id: message.id, modules })
        return
      }
      case 'metrics':
        void metrics.registry
          .getMetricsAsJSON()
          .then((json) => send({ t: 'metrics', id: message.id, metrics: json }))
        return
      case 'prepare':
        void prepare(host, message, prepared).then(send)
        return
      case 'commit':
        commit(host, message, prepared, send)
        return
      case 'abort':
        prepared.delete(message.id)
        void host.runtime.abort(message.id).then(() => send({ t: 'aborted', id: message.id }))
        return
      case 'drain':
        void drain(message.graceMs)
        return
      case 'stop':
        void stop(message.graceMs).then((code) => {
          process.disconnect()
          process.exitCode = code
        })
        return
    }
  }
  process.on('message', onMessage)
  // the supervisor is gone (killed): a worker never outlives it
  process.on('disconnect', () => void stop(options.process.shutdownFastMs).then((code) => process.exit(code)))

  try {
    await host.prepare()
  } catch (err) {
    log.fatal({ reason: reasonOf(err), worker: slot }, `worker ${slot} failed to load: ${reasonOf(err)}`)
    removeCrashHandlers()
    return 1
  }
  send({ t: 'loaded', modules: views(host) })
  // a crashed module restarted here (not a reload the supervisor sent): it learns the new numbers
  host.reloader.events.on((e) => {
    if (e.phase === 'swapped' && e.trigger === 'crash' && e.generations)
      send({ t: 'generations', generations: { ...e.generations } })
  })
  const code = await done
  removeCrashHandlers()
  return code
}

async function prepare(
  host: NyalaHost,
  message: Extract<ToWorker, { t: 'prepare' }>,
  prepared: Map<number, PreparedHere>,
): Promise<FromWorker> {
  const t0 = performance.now()
  const items: PlanItem[] = []
  const updates: PreparedHere['updates'] = []
  for (const w of message.items) {
    const existing = host.modules.get(w.name)
    const record = existing ?? newRecord(w.name, w.file ?? w.name)
    // every worker starts the same number, even one whose own crash restarts moved it ahead
    record.generations = Math.max(record.generations, w.number - 1)
    const bundle = w.bundle ? bundleFromTransfer(w.bundle) : undefined
    if (bundle && w.digests) rememberDigests(bundle, w.digests.entries, w.digests.values)
    const down = w.down ? (errorFromWire(w.down) as NyalaError) : undefined
    items.push({
      name: w.name,
      record,
      bundle: bundle ?? existing?.bundle,
      changed: w.changed,
      removed: w.removed,
      wasRunning: existing?.state === 'running',
      down,
    })
    updates.push({ name: w.name, record, isNew: !existing, removed: w.removed, bundle, file: w.file, down })
  }
  const result = await host.runtime.prepare({ id: message.id, items, blocking: message.blocking })
  if (!result.ok)
    return {
      t: 'prepared',
      id: message.id,
      ok: false,
      error: errorToWire(result.error),
      module: result.module,
    }
  const down: Record<string, WireError> = {}
  for (const [name, err] of result.down) {
    down[name] = errorToWire(err)
    const u = updates.find((x) => x.name === name)
    if (u) u.down = err
  }
  prepared.set(message.id, { items, updates, generations: { ...result.generations } })
  settleHeap()
  return {
    t: 'prepared',
    id: message.id,
    ok: true,
    generations: { ...result.generations },
    down,
    ms: performance.now() - t0,
  }
}

/**
 * Swaps at the COMMIT's `swapAt` (Dispatcher.swapAt): the records and the
 * table change together, at that instant for routing, so a request routed
 * here after it finds the new generations in every worker.
 */
function commit(
  host: NyalaHost,
  message: Extract<ToWorker, { t: 'commit' }>,
  prepared: Map<number, PreparedHere>,
  send: (m: FromWorker) => void,
): void {
  const here = prepared.get(message.id)
  if (!here) return
  prepared.delete(message.id)
  const arrivedAt = monotonicMs()
  const at = Math.max(message.swapAt, arrivedAt)
  host.dispatcher.swapAt(at, () => {
    applyRecords(host, here.updates, here.generations, { at: message.at, ms: message.ms }, message.id)
    // crashes are this worker's own to supervise, and this commit is a deploy or an operator's
    // reload (never a crash restart, which a worker runs itself): the modules it changed start a
    // fresh restart count here, as src/host.ts does for a single process; the dependents keep theirs
    for (const item of here.items) if (item.changed) host.supervisor.reset(item.name)
    // the swap itself runs now, synchronously; only the drain is awaited
    const committing = host.runtime.commit({
      id: message.id,
      publish: message.publish,
      generations: here.generations,
      at: message.at,
      ms: message.ms,
    })
    void committing
      .then(({ drained }) => {
        send({ t: 'committed', id: message.id, at, arrivedAt })
        return drained
      })
      .then(
        () => send({ t: 'drained', id: message.id }),
        (err: unknown) => host.log.error({ reload: message.id, reason: reasonOf(err) }, reasonOf(err)),
      )
  })
}

function views(host: NyalaHost): WorkerModuleView[] {
  return [...host.modules.values()].map((r) => ({
    name: r.name,
    state: r.state,
    generation: r.state === 'running' ? (r.generation?.number ?? null) : null,
    inflight: r.generation?.inflight ?? 0,
    served: r.servedBefore + (r.generation?.served ?? 0),
    error: r.error ? errorToWire(r.error) : null,
  }))
}

function startNumbersFromEnv(): ReadonlyMap<string, number> {
  const raw = process.env[workerEnv.generations]
  if (!raw) return new Map()
  try {
    const parsed = JSON.parse(raw) as Record<string, unknown>
    return new Map(Object.entries(parsed).filter((e): e is [string, number] => typeof e[1] === 'number'))
  } catch {
    return new Map()
  }
}
