import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { nyalaError, reasonOf } from '../errors.js'

/** What `describe(fd)` finds behind a descriptor. */
export interface FdDescription {
  readonly kind: 'socket' | 'file' | 'fifo' | 'other'
  readonly listening: boolean
  readonly type: 'stream' | 'dgram' | 'seqpacket' | 'none' | 'other'
  readonly family: 'inet' | 'inet6' | 'unix' | 'none' | 'other'
}

export interface ReceivedMessage {
  /** Empty at end of stream. */
  readonly data: Buffer
  /** Every descriptor the kernel installed (close-on-exec); the receiver owns them. */
  readonly fds: readonly number[]
  /** The data or the descriptor list did not fit: the message must be refused. */
  readonly truncated: boolean
}

/**
 * The addon in native/ (fdpass.c): AF_UNIX SOCK_SEQPACKET sockets, sendmsg/recvmsg
 * with SCM_RIGHTS, SO_PEERCRED. Every call is non-blocking; errors carry the errno
 * name as `code`.
 */
export interface FdPass {
  listen(path: string, backlog: number): number
  connect(path: string): number
  /** -1 when no connection is waiting. */
  accept(fd: number): number
  close(fd: number): void
  send(fd: number, data: Buffer, fds: readonly number[]): number
  /** null when no message is waiting. */
  recv(fd: number): ReceivedMessage | null
  peerCredentials(fd: number): { pid: number; uid: number; gid: number }
  describe(fd: number): FdDescription
  /** Polls on libuv's thread pool; true when readable or at end of stream. */
  waitReadable(fd: number, timeoutMs: number): Promise<boolean>
  /** `_exit(code)`: ends the whole process at once, from any thread (the watchdog's). */
  exitNow(code: number): never
}

export const addonFile = fileURLToPath(
  new URL('../../native/build/Release/nyala_fdpass.node', import.meta.url),
)

let loaded: FdPass | undefined

/** Loads the addon once; a missing build is NYALA_ERR_NATIVE_MISSING, not a crash. */
export function fdpass(): FdPass {
  if (loaded) return loaded
  try {
    loaded = createRequire(import.meta.url)(addonFile) as FdPass
  } catch (err) {
    throw nyalaError('NYALA_ERR_NATIVE_MISSING', { file: addonFile, reason: reasonOf(err) }, err)
  }
  return loaded
}

/** Closes without throwing: used on paths that are already reporting another error. */
export function closeQuietly(fds: Iterable<number>): void {
  const native = fdpass()
  for (const fd of fds) {
    try {
      native.close(fd)
    } catch {
      // already closed: nothing left to release
    }
  }
}
