/**
 * The handover messages. One message is one SOCK_SEQPACKET packet:
 *
 *   0  magic "NYUP"        4  version (u8)       5  type (u8)
 *   6  descriptors (u16)   8  body length (u32)  12 body: JSON object
 *
 * Both ends refuse anything else: a wrong magic or version, an unknown type, a
 * descriptor count that is not what the kernel delivered, a length that is not the
 * packet's, a body that is not the shape its type requires.
 */
export const protocolVersion = 1
const magic = Buffer.from('NYUP', 'latin1')
const headerBytes = 12
/** More listeners than Nyala has; a peer naming more is refused. */
export const maxListeners = 16

export const frameTypes = {
  /** old -> successor: who is asking, and which modules serve there */
  hello: 1,
  /** successor -> old: send the listeners */
  ready: 2,
  /** successor -> old: it will not take over (a module failed) */
  refuse: 3,
  /** old -> successor: the listening descriptors, one per listener */
  listeners: 4,
  /** successor -> old: it has adopted every listener and accepts once the old one has stopped */
  ack: 5,
  /** successor -> old: adoption failed */
  nak: 6,
  /**
   * old -> successor: it has stopped accepting. Added after version 1 shipped, without a new
   * version: a successor that does not know it never reads past the acknowledgement, and one
   * that does treats an old instance hanging up without it the same.
   */
  released: 7,
} as const

export type FrameType = keyof typeof frameTypes

export interface ListenerInfo {
  readonly name: string
  readonly family: string
  readonly address: string
  readonly port: number
}

export interface Bodies {
  hello: { pid: number; modules: string[] }
  ready: { pid: number }
  refuse: { pid: number; code: string; reason: string; module?: string }
  listeners: { pid: number; listeners: ListenerInfo[] }
  ack: { pid: number; adopted: string[] }
  nak: { pid: number; code: string; reason: string }
  released: { pid: number }
}

export type Frame = { [T in FrameType]: { type: T; body: Bodies[T]; fds: readonly number[] } }[FrameType]

/** A message that breaks the protocol; `reason` says how, for NYALA_ERR_UPGRADE_PROTOCOL. */
export class ProtocolViolation extends Error {}

export function encodeFrame<T extends FrameType>(type: T, body: Bodies[T], fdCount = 0): Buffer {
  const json = Buffer.from(JSON.stringify(body), 'utf8')
  const header = Buffer.alloc(headerBytes)
  magic.copy(header, 0)
  header.writeUInt8(protocolVersion, 4)
  header.writeUInt8(frameTypes[type], 5)
  header.writeUInt16BE(fdCount, 6)
  header.writeUInt32BE(json.length, 8)
  return Buffer.concat([header, json])
}

const typeNames = new Map<number, FrameType>(
  Object.entries(frameTypes).map(([name, n]) => [n, name as FrameType]),
)
const listenerName = /^[a-z][a-z0-9-]{0,31}$/

/**
 * Decodes and validates one packet with the descriptors that came with it. Throws a
 * ProtocolViolation; the caller closes the descriptors then.
 */
export function decodeFrame(data: Buffer, fds: readonly number[], truncated: boolean): Frame {
  if (truncated) throw new ProtocolViolation('message or descriptor list truncated')
  if (data.length < headerBytes || !data.subarray(0, 4).equals(magic)) {
    throw new ProtocolViolation('not a Nyala handover message (bad magic)')
  }
  const version = data.readUInt8(4)
  if (version !== protocolVersion) {
    throw new ProtocolViolation(`protocol version ${version}, this Nyala speaks ${protocolVersion}`)
  }
  const type = typeNames.get(data.readUInt8(5))
  if (!type) throw new ProtocolViolation(`unknown message type ${data.readUInt8(5)}`)
  const count = data.readUInt16BE(6)
  if (count !== fds.length) {
    throw new ProtocolViolation(`header announces ${count} descriptor(s), ${fds.length} arrived`)
  }
  if (count > 0 && type !== 'listeners')
    throw new ProtocolViolation(`a ${type} message carries no descriptors`)
  const length = data.readUInt32BE(8)
  if (length !== data.length - headerBytes) {
    throw new ProtocolViolation(`header announces ${length} body bytes, ${data.length - headerBytes} arrived`)
  }
  let body: unknown
  try {
    body = JSON.parse(data.subarray(headerBytes).toString('utf8'))
  } catch {
    throw new ProtocolViolation(`${type} body is not JSON`)
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ProtocolViolation(`${type} body is not an object`)
  }
  const b = body as Record<string, unknown>
  if (!Number.isInteger(b.pid) || (b.pid as number) <= 0) throw new ProtocolViolation(`${type} names no pid`)
  const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === 'string')
  switch (type) {
    case 'hello':
      if (!strings(b.modules)) throw new ProtocolViolation('hello lists no modules')
      break
    case 'refuse':
    case 'nak':
      if (typeof b.code !== 'string' || typeof b.reason !== 'string') {
        throw new ProtocolViolation(`${type} gives no code and reason`)
      }
      break
    case 'ack':
      if (!strings(b.adopted)) throw new ProtocolViolation('ack lists no adopted listeners')
      break
    case 'listeners':
      validateListeners(b.listeners, count)
      break
  }
  return { type, body, fds } as Frame
}

function validateListeners(list: unknown, count: number): void {
  if (!Array.isArray(list)) throw new ProtocolViolation('listeners message has no listener list')
  if (list.length === 0 || list.length > maxListeners) {
    throw new ProtocolViolation(`${list.length} listeners, expected 1 to ${maxListeners}`)
  }
  if (list.length !== count) {
    throw new ProtocolViolation(`${list.length} listeners named for ${count} descriptor(s)`)
  }
  const seen = new Set<string>()
  for (const item of list as unknown[]) {
    const l = item as Partial<ListenerInfo> | null
    if (typeof l !== 'object' || l === null || typeof l.name !== 'string' || !listenerName.test(l.name)) {
      throw new ProtocolViolation(`bad listener name ${JSON.stringify((l as { name?: unknown })?.name)}`)
    }
    if (seen.has(l.name)) throw new ProtocolViolation(`listener "${l.name}" named twice`)
    seen.add(l.name)
    if (typeof l.address !== 'string' || typeof l.family !== 'string' || !Number.isInteger(l.port)) {
      throw new ProtocolViolation(`listener "${l.name}" has no address`)
    }
  }
}
