import type { Server } from 'node:http'
import { type AddressInfo, Server as NetServer } from 'node:net'
import { type NyalaError, nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { type Channel, expectFrame } from './channel.js'
import { type ListenerInfo, ProtocolViolation } from './frame.js'
import type { UpgradeHost } from './upgrade-host.js'
import { connectToSuccessor } from './upgrade-socket.js'

/** How long SIGQUIT keeps trying to reach a successor that is not listening yet. */
export const connectRetryMs = 5000
/** A successor has loaded everything before it listens: it answers at once or not at all. */
const answerTimeoutMs = 10_000
/** Adoption is a listen() per descriptor; generous for a loaded machine. */
const ackTimeoutMs = 15_000

export type HandOverResult = { ok: true; successor: number } | { ok: false; error: NyalaError }

/** The descriptor under a listening server (Node keeps it on the handle; there is no public getter). */
function serverFd(server: Server): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}

/**
 * The old instance's side of the handover (SIGQUIT). Sends every listener of
 * `host.servers` in one message and resolves ok only once the successor has
 * acknowledged that it accepts on all of them. Until then, and on any failure,
 * this process keeps accepting: a failed handover never causes an outage.
 */
export async function handOver(host: UpgradeHost, log: Logger): Promise<HandOverResult> {
  const socket = host.options.process.upgradeSocket
  const fail = (error: NyalaError): HandOverResult => {
    log.error(error.toJSON(), error.message)
    return { ok: false, error }
  }
  let channel: Channel | undefined
  try {
    channel = await connectToSuccessor(socket, Date.now() + connectRetryMs)
  } catch (err) {
    return fail(err as NyalaError)
  }
  if (!channel) return fail(nyalaError('NYALA_ERR_UPGRADE_NO_SUCCESSOR', { socket, timeout: connectRetryMs }))
  let successor = 0
  try {
    const peer = channel.peer
    successor = peer.pid
    const uid = process.getuid?.() ?? -1
    if (peer.uid !== uid) {
      return fail(
        nyalaError('NYALA_ERR_UPGRADE_PEER', {
          socket,
          peerPid: peer.pid,
          peerUid: peer.uid,
          reason: `not our uid ${uid}`,
        }),
      )
    }
    log.info({ socket, successor }, `handover: successor pid ${successor} answered on ${socket}`)

    const modules = [...host.modules.values()].filter((m) => m.state === 'running').map((m) => m.name)
    channel.send('hello', { pid: process.pid, modules })
    const answer = expectFrame(await channel.receive(answerTimeoutMs), 'ready', 'refuse')
    if (answer.type === 'refuse') {
      return fail(nyalaError('NYALA_ERR_UPGRADE_REFUSED', { successor, reason: answer.body.reason }))
    }

    const listeners: ListenerInfo[] = []
    const fds: number[] = []
    for (const [name, server] of host.servers) {
      const fd = serverFd(server)
      const address = server.address() as AddressInfo | null
      if (fd === undefined || !address || typeof address !== 'object') {
        throw new ProtocolViolation(`listener "${name}" has no listening descriptor here`)
      }
      listeners.push({ name, family: address.family, address: address.address, port: address.port })
      fds.push(fd)
    }
    channel.send('listeners', { pid: process.pid, listeners }, fds)
    const result = expectFrame(await channel.receive(ackTimeoutMs), 'ack', 'nak')
    if (result.type === 'nak') {
      return fail(nyalaError('NYALA_ERR_UPGRADE_REFUSED', { successor, reason: result.body.reason }))
    }
    // Stop accepting in this very tick, then say so: the successor, ready since its
    // acknowledgement, accepts only on `released` (take-over.ts), so the two never accept at
    // once and a client opening connections one after the other sees this process, then the
    // new one. Until then connections wait in the sockets' backlogs; the drain (host.close)
    // comes after, and the listening must not wait for it.
    for (const server of host.servers.values()) NetServer.prototype.close.call(server)
    try {
      channel.send('released', { pid: process.pid })
    } catch {
      // the successor is gone: it would have accepted after a hang-up all the same
    }
    log.info(
      { successor, listeners: listeners.map((l) => `${l.name} ${l.address}:${l.port}`) },
      `handover: successor pid ${successor} accepts on ${listeners.map((l) => l.name).join(', ')}`,
    )
    return { ok: true, successor }
  } catch (err) {
    return fail(
      nyalaError('NYALA_ERR_UPGRADE_PROTOCOL', {
        socket,
        reason: `handover to pid ${successor} failed: ${reasonOf(err)}`,
      }),
    )
  } finally {
    channel.close()
  }
}
