/**
 * Requests to an isolated module, as messages between the serving thread and
 * the module's thread (thread-proxy.ts on one side, thread-requests.ts on the
 * other). Every message names its request by `id`; chunks are copies of their
 * bytes whose buffer is transferred, not cloned.
 */

/** The serving thread to the module's thread. */
export type RequestMessage =
  | {
      readonly t: 'rq'
      readonly id: number
      /** The generation that serves it (an old one drains on its own code). */
      readonly g: number
      readonly m: string
      readonly u: string
      /** The end-to-end headers, a flat [name, value, ...] list as received. */
      readonly h: readonly string[]
      /** The client's address. */
      readonly a: string
      /** The request has no body: it is complete with this message. */
      readonly e: boolean
    }
  /** A chunk of the body. */
  | { readonly t: 'rb'; readonly id: number; readonly c: Uint8Array }
  /** The end of the body. */
  | { readonly t: 're'; readonly id: number }
  /** The client went away. */
  | { readonly t: 'rx'; readonly id: number }
  /** The client's response does not drain: hold the module's writes / go on. */
  | { readonly t: 'rp'; readonly id: number }
  | { readonly t: 'rr'; readonly id: number }

/** The module's thread to the serving thread. */
export type ResponseMessage =
  | {
      readonly t: 'sh'
      readonly id: number
      readonly s: number
      readonly r: string
      readonly h: readonly string[]
      readonly c: Uint8Array | undefined
      readonly f: boolean
    }
  | { readonly t: 'sb'; readonly id: number; readonly c: Uint8Array | undefined; readonly f: boolean }
  /** The response was destroyed before its end. */
  | { readonly t: 'sx'; readonly id: number }
  /** The module does not read the body fast enough: pause the client's upload / go on. */
  | { readonly t: 'bp'; readonly id: number }
  | { readonly t: 'br'; readonly id: number }

/** A copy of `chunk` in a buffer of its own, to transfer (a pooled Buffer's whole pool would be cloned). */
export function ownCopy(chunk: Uint8Array): Uint8Array {
  const copy = new Uint8Array(chunk.byteLength)
  copy.set(chunk)
  return copy
}
