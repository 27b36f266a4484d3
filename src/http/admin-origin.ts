import { isIP } from 'node:net'

/** Why a request to a token-less admin API looks like a browser page of another site. */
export interface ForeignOrigin {
  readonly header: 'host' | 'origin'
  readonly value: string
  readonly expected: string
}

/** `name` of `name:port`, `[::1]:port` or `name`, lower case. */
function hostnameOf(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'))
  const colon = h.lastIndexOf(':')
  return colon === -1 ? h : h.slice(0, colon)
}

/**
 * Without `admin.token` the admin API trusts whoever reaches its loopback port, and a
 * browser on the machine is such a client for every site it shows: a site whose name is
 * made to resolve to 127.0.0.1 (DNS rebinding) reads and deploys as if it were the
 * console, and any site can post a form to `127.0.0.1` (a forced reload, an
 * unregister). Refused, as other local consoles do: a Host that is a name but not
 * `localhost` or `admin.host` (an IP address cannot be rebound), and an `Origin` that is
 * not this listener's own. The CLI sends no Origin and names the listener as configured.
 * With a token neither applies: a browser cannot send the bearer header across sites.
 */
export function foreignOrigin(
  headers: { readonly host?: string | undefined; readonly origin?: string | undefined },
  adminHost: string,
): ForeignOrigin | undefined {
  const host = headers.host
  if (host !== undefined) {
    const name = hostnameOf(host)
    const allowed = isIP(name) !== 0 || name === 'localhost' || name === adminHost.toLowerCase()
    if (!allowed) return { header: 'host', value: host, expected: `an IP address, localhost or ${adminHost}` }
  }
  const origin = headers.origin
  if (origin !== undefined) {
    let same = false
    try {
      same = host !== undefined && new URL(origin).host === new URL(`http://${host}`).host
    } catch {
      // "null" (a sandboxed frame, a file) or garbage: not this listener's page
    }
    if (!same) return { header: 'origin', value: origin, expected: `http://${host ?? '<admin listener>'}` }
  }
  return undefined
}
