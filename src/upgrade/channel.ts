import {
  type Bodies,
  decodeFrame,
  encodeFrame,
  type Frame,
  type FrameType,
  ProtocolViolation,
} from './frame.js'
import { closeQuietly, fdpass } from './native.js'

/** Longest single poll: keeps a waiting thread-pool job short, so close never races a poll for long. */
const pollSliceMs = 200

/** Resolves true once `fd` is readable, false at the deadline or when `signal` aborts. */
export async function waitFor(fd: number, deadline: number, signal?: AbortSignal): Promise<boolean> {
  const native = fdpass()
  for (;;) {
    if (signal?.aborted) return false
    const left = deadline - Date.now()
    if (left <= 0) return false
    if (await native.waitReadable(fd, Math.min(left, pollSliceMs))) return true
  }
}

/** One connected upgrade-socket connection, speaking frames. */
export class Channel {
  readonly fd: number
  #closed = false

  constructor(fd: number) {
    this.fd = fd
  }

  get peer(): { pid: number; uid: number; gid: number } {
    return fdpass().peerCredentials(this.fd)
  }

  send<T extends FrameType>(type: T, body: Bodies[T], fds: readonly number[] = []): void {
    fdpass().send(this.fd, encodeFrame(type, body, fds.length), fds)
  }

  /**
   * The next message, validated. Throws ProtocolViolation on a bad message (its
   * descriptors closed), at end of stream, or when nothing came within `timeoutMs`.
   */
  async receive(timeoutMs: number, signal?: AbortSignal): Promise<Frame> {
    const native = fdpass()
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const message = native.recv(this.fd)
      if (message) {
        if (message.data.length === 0 && message.fds.length === 0) {
          throw new ProtocolViolation('the peer closed the connection')
        }
        try {
          return decodeFrame(message.data, message.fds, message.truncated)
        } catch (err) {
          closeQuietly(message.fds)
          throw err
        }
      }
      if (!(await waitFor(this.fd, deadline, signal))) {
        throw new ProtocolViolation(
          signal?.aborted ? 'stopped while waiting for the peer' : `no answer within ${timeoutMs} ms`,
        )
      }
    }
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    closeQuietly([this.fd])
  }
}

/** Narrows a frame to the types a step expects, or throws naming what came instead. */
export function expectFrame<T extends FrameType>(frame: Frame, ...types: T[]): Extract<Frame, { type: T }> {
  if (!(types as FrameType[]).includes(frame.type)) {
    closeQuietly(frame.fds)
    throw new ProtocolViolation(`expected ${types.join(' or ')}, got ${frame.type}`)
  }
  return frame as Extract<Frame, { type: T }>
}
