import { lstatSync, rmSync } from 'node:fs'
import path from 'node:path'
import { nyalaError, reasonOf } from '../errors.js'
import type { Logger } from '../logger.js'
import { Channel, waitFor } from './channel.js'
import { closeQuietly, fdpass } from './native.js'
import { ensureDirectory } from './pidfile.js'

/**
 * The successor's end of the upgrade socket: a SOCK_SEQPACKET Unix socket, mode
 * 0600, answering only peers of our own uid, removed when closed.
 */
export class UpgradeSocket {
  readonly path: string
  readonly fd: number
  #closed = false

  private constructor(file: string, fd: number) {
    this.path = file
    this.fd = fd
  }

  static open(file: string): UpgradeSocket {
    const native = fdpass()
    try {
      ensureDirectory(path.dirname(file), 0o700)
    } catch (err) {
      throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', { socket: file, reason: reasonOf(err) }, err)
    }
    removeStale(file)
    try {
      return new UpgradeSocket(file, native.listen(file, 4))
    } catch (err) {
      throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', { socket: file, reason: reasonOf(err) }, err)
    }
  }

  /**
   * The next connection from a process of our own uid, or undefined at the deadline.
   * Other peers are logged and dropped: the mode already keeps them out, this is the
   * second lock (a socket made by a root-owned or shared directory, a race at bind).
   */
  async accept(deadline: number, log: Logger, signal?: AbortSignal): Promise<Channel | undefined> {
    const native = fdpass()
    const uid = process.getuid?.() ?? -1
    for (;;) {
      const fd = native.accept(this.fd)
      if (fd >= 0) {
        const channel = new Channel(fd)
        const peer = channel.peer
        if (peer.uid === uid) return channel
        const err = nyalaError('NYALA_ERR_UPGRADE_PEER', {
          socket: this.path,
          peerPid: peer.pid,
          peerUid: peer.uid,
          reason: `not our uid ${uid}`,
        })
        log.warn(err.toJSON(), err.message)
        channel.close()
        continue
      }
      if (!(await waitFor(this.fd, deadline, signal))) return undefined
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    closeQuietly([this.fd])
    rmSync(this.path, { force: true })
  }
}

/**
 * A socket file left by a successor that died is removed; a live one (something
 * answers) or a file that is not a socket is an error, not something to delete.
 */
function removeStale(file: string): void {
  let isSocket: boolean
  try {
    isSocket = lstatSync(file).isSocket()
  } catch {
    return
  }
  if (!isSocket) {
    throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', { socket: file, reason: 'exists and is not a socket' })
  }
  const native = fdpass()
  try {
    closeQuietly([native.connect(file)])
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
      rmSync(file, { force: true })
      return
    }
    throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', { socket: file, reason: reasonOf(err) }, err)
  }
  throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', {
    socket: file,
    reason: 'another successor is already waiting on it',
  })
}

/**
 * The old instance's end: connects, retrying while no successor listens yet
 * (ENOENT, ECONNREFUSED, EAGAIN), until the deadline. The peer must be our uid.
 */
export async function connectToSuccessor(file: string, deadline: number): Promise<Channel | undefined> {
  const native = fdpass()
  for (;;) {
    try {
      return new Channel(native.connect(file))
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT' && code !== 'ECONNREFUSED' && code !== 'EAGAIN') {
        throw nyalaError('NYALA_ERR_UPGRADE_SOCKET', { socket: file, reason: reasonOf(err) }, err)
      }
    }
    if (Date.now() >= deadline) return undefined
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
