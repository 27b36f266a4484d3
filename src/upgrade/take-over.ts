import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { type Channel, expectFrame } from './channel.js'
import { type ListenerInfo, ProtocolViolation } from './frame.js'
import { closeQuietly, fdpass } from './native.js'
import type { UpgradeHost } from './upgrade-host.js'
import { UpgradeSocket } from './upgrade-socket.js'

/** The old instance sends each message right after the previous answer. */
const stepTimeoutMs = 10_000
const adoptable = new Set(['inet', 'inet6', 'unix'])
/** How long the successor waits for `released` after its acknowledgement before it accepts anyway. */
const releaseTimeoutMs = 1000

export interface TakeOverOptions {
  /** Aborts the wait (SIGTERM, SIGINT while waiting). */
  readonly signal?: AbortSignal
  /** Called once the upgrade socket listens: the successor is ready for SIGQUIT. */
  readonly onWaiting?: (socket: string) => void
}

/**
 * The successor's side (`nyala start --upgrade`), called with every module loaded.
 * Listens on the upgrade socket until the old instance connects (SIGQUIT there),
 * refuses if a module serving there failed here, adopts every listening descriptor
 * through `host.start(inherited)`, and acknowledges. Resolves with the old pid.
 */
export async function takeOver(host: UpgradeHost, log: Logger, opts: TakeOverOptions = {}): Promise<number> {
  const { upgradeSocket, upgradeWaitTimeoutMs } = host.options.process
  const socket = UpgradeSocket.open(upgradeSocket)
  try {
    log.info(
      { socket: upgradeSocket, timeout: upgradeWaitTimeoutMs },
      `waiting for the running instance to hand over its listeners on ${upgradeSocket}`,
    )
    opts.onWaiting?.(upgradeSocket)
    const deadline = Date.now() + upgradeWaitTimeoutMs
    for (;;) {
      const channel = await socket.accept(deadline, log, opts.signal)
      if (!channel) {
        if (opts.signal?.aborted) throw opts.signal.reason
        throw nyalaError('NYALA_ERR_UPGRADE_WAIT_TIMEOUT', {
          socket: upgradeSocket,
          timeout: upgradeWaitTimeoutMs,
        })
      }
      try {
        const from = await exchange(host, log, channel, upgradeSocket, opts.signal)
        if (from !== undefined) return from
      } finally {
        channel.close()
      }
    }
  } finally {
    socket.close()
  }
}

/**
 * One connection. A peer breaking the protocol before anything is adopted is
 * dropped and the wait goes on (undefined); a failed module or a failed adoption
 * is final (throws).
 */
async function exchange(
  host: UpgradeHost,
  log: Logger,
  channel: Channel,
  socket: string,
  signal: AbortSignal | undefined,
): Promise<number | undefined> {
  let inherited: Map<string, number> | undefined
  try {
    const hello = expectFrame(await channel.receive(stepTimeoutMs, signal), 'hello')
    const old = hello.body.pid
    log.info({ from: old, modules: hello.body.modules.length }, `handover: pid ${old} connected`)
    for (const name of hello.body.modules) {
      const record = host.modules.get(name)
      if (record?.state === 'running') continue
      if (!record) {
        // a bundle removed from the deployment is a decision, not a failure to start
        log.warn(
          { module: name, oldPid: old },
          `handover: module ${name} serves in pid ${old} but is not deployed here`,
        )
        continue
      }
      const err = nyalaError('NYALA_ERR_UPGRADE_MODULE_FAILED', {
        module: name,
        oldPid: old,
        reason: record.error?.message ?? record.state,
      })
      channel.send('refuse', { pid: process.pid, code: err.code, reason: err.message, module: name })
      throw err
    }
    channel.send('ready', { pid: process.pid })

    const frame = expectFrame(await channel.receive(stepTimeoutMs, signal), 'listeners')
    inherited = new Map()
    for (const [i, listener] of frame.body.listeners.entries()) inherited.set(listener.name, frame.fds[i]!)
    for (const [name, fd] of inherited) {
      const d = fdpass().describe(fd)
      if (d.kind !== 'socket' || !d.listening || d.type !== 'stream' || !adoptable.has(d.family)) {
        const what =
          d.kind === 'socket' ? `a ${d.family} ${d.type} socket that is not listening` : `a ${d.kind}`
        throw new ProtocolViolation(`listener "${name}": the descriptor is ${what}, not a listening socket`)
      }
    }
    const handed = inherited
    /** Set once the acknowledgement is out: the old instance stops accepting then, so no nak. */
    let acked = false
    let ackFailed: NyalaError | undefined
    try {
      await host.start(handed, async (adopted) => {
        for (const [name, fd] of handed) {
          if (adopted.includes(name)) continue
          // a listener this version does not run: keeping it open would hold the port for nobody
          log.warn({ listener: name }, `handover: no listener "${name}" here; its descriptor is closed`)
          closeQuietly([fd])
          handed.delete(name)
        }
        try {
          channel.send('ack', { pid: process.pid, adopted: [...adopted] })
        } catch (err) {
          ackFailed = nyalaError('NYALA_ERR_UPGRADE_PROTOCOL', {
            socket,
            reason: `pid ${old} hung up before the acknowledgement (${reasonOf(err)}): it keeps serving, this one stops`,
          })
          throw ackFailed
        }
        acked = true
        await whenReleased(channel, old, log, signal)
      })
    } catch (err) {
      if (err === ackFailed) throw err
      const names = [...handed.keys()].filter((n) => !host.servers.has(n))
      const failure = nyalaError(
        'NYALA_ERR_UPGRADE_ADOPT',
        {
          name: names.join(', '),
          reason: acked
            ? `${reasonOf(err)} (after the acknowledgement: nothing accepts on it now)`
            : reasonOf(err),
        },
        err,
      )
      inherited = undefined // the servers own them now, or the process is about to exit
      if (!acked) channel.send('nak', { pid: process.pid, code: failure.code, reason: failure.message })
      throw failure
    }
    inherited = undefined
    warnIfMoved(host, log, frame.body.listeners)
    return old
  } catch (err) {
    if (inherited) closeQuietly(inherited.values())
    if (!(err instanceof ProtocolViolation)) throw err
    const e = nyalaError('NYALA_ERR_UPGRADE_PROTOCOL', { socket, reason: err.message })
    log.error(e.toJSON(), `${e.message}: connection dropped, still waiting`)
    try {
      channel.send('nak', { pid: process.pid, code: e.code, reason: e.message })
    } catch {
      // the peer is gone already
    }
    return undefined
  }
}

/**
 * Waits until the old instance says it stopped accepting (it does in the tick the
 * acknowledgement arrives). Bounded: an older Nyala hangs up without saying it, and an old
 * instance whose event loop is held past the bound is not accepting either.
 */
async function whenReleased(channel: Channel, old: number, log: Logger, signal?: AbortSignal): Promise<void> {
  try {
    expectFrame(await channel.receive(releaseTimeoutMs, signal), 'released')
  } catch (err) {
    log.warn(
      { from: old, reason: reasonOf(err) },
      `handover: pid ${old} did not say it stopped accepting (${reasonOf(err)}): accepting now`,
    )
  }
}

/**
 * An inherited listener keeps its address: a new `port` in the successor's
 * configuration only applies to a fresh start, and saying so beats a silent surprise.
 */
function warnIfMoved(host: UpgradeHost, log: Logger, listeners: readonly ListenerInfo[]): void {
  const configured: Record<string, number> = { http: host.options.port, admin: host.options.admin.port }
  for (const l of listeners) {
    const port = configured[l.name]
    if (port === undefined || port === 0 || port === l.port) continue
    log.warn(
      { listener: l.name, port: l.port, configured: port },
      `handover: listener ${l.name} keeps port ${l.port}; the configured port ${port} applies to a fresh start only`,
    )
  }
}
