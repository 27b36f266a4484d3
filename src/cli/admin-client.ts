import { readFileSync } from 'node:fs'
import { loadHostOptions } from '../config/host-options.js'
import { isNyalaError, nyalaError, reasonOf } from '../errors.js'
import { adminUrlFileOf } from '../http/admin-url.js'
import { UsageError } from './common.js'

export interface AdminTarget {
  readonly url: string
  readonly token: string
  /**
   * Said with an unreachable API when the URL came from the configuration: a host that serves
   * writes its URL beside its pidfile and removes it when it stops, so without that file no host
   * is likely to be serving from the root.
   */
  readonly note?: string
}

/**
 * Where the admin API of a root's host is: `--admin URL` when given, else the
 * URL the running host wrote beside its pidfile, else `admin.host`/`admin.port`
 * of the root's configuration. The token comes from `--token`, `NYALA_ADMIN_TOKEN`
 * or the configuration.
 */
export function findAdmin(values: Record<string, string | boolean | undefined>): AdminTarget {
  refuseRootWithAdmin(values)
  const flagToken = (values.token as string | undefined) ?? process.env.NYALA_ADMIN_TOKEN
  if (typeof values.admin === 'string')
    return { url: values.admin.replace(/\/+$/, ''), token: flagToken ?? '' }
  const { options } = loadHostOptions({
    root: values.root as string | undefined,
    config: values.config as string | undefined,
  })
  const token = flagToken ?? options.admin.token
  const file = adminUrlFileOf(options)
  try {
    const written = readFileSync(file, 'utf8').trim()
    if (written) return { url: written, token }
  } catch {
    // no host serving (it removes the file when it stops), or an older layout: the configuration
  }
  const host = options.admin.host.includes(':') ? `[${options.admin.host}]` : options.admin.host
  const note = `no host is serving from this root: ${file}, written by a serving host, is absent`
  return { url: `http://${host}:${options.admin.port}`, token, note }
}

/**
 * `--admin URL` names the host to ask; a `--root` or `--config` beside it would be read for
 * nothing (or, for a token, read from another host's configuration): a usage error, for every
 * command that talks to the admin API. Until 2026-11-30 only `deploy` refused it; `status` and
 * `reload` ignored the root.
 */
export function refuseRootWithAdmin(values: Record<string, string | boolean | undefined>): void {
  if (typeof values.admin === 'string' && (values.root !== undefined || values.config !== undefined)) {
    throw new UsageError(
      '--admin names the host to ask through its admin API: it takes no --root or --config',
    )
  }
}

/**
 * How long a call waits for the admin API's answer: 120 s (a reload runs to its verdict before
 * the host answers). `NYALA_ADMIN_ANSWER_MS` changes it, for tests of a host that never answers.
 */
function answerWaitMs(): number {
  const ms = Number(process.env.NYALA_ADMIN_ANSWER_MS)
  return Number.isFinite(ms) && ms > 0 ? ms : 120_000
}

/** Calls the admin API (with a bundle as the body for `PUT /deploy`); a NyalaError for an unreachable API or an error answer without a code. */
export async function callAdmin(
  target: AdminTarget,
  method: string,
  path: string,
  bundle?: Uint8Array,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const url = `${target.url}${path}`
  const headers: Record<string, string> = target.token ? { authorization: `Bearer ${target.token}` } : {}
  if (bundle) headers['content-type'] = 'application/zip'
  const waitMs = answerWaitMs()
  const signal = AbortSignal.timeout(waitMs)
  // a host that answers late (a reload of a long chain, a lock held by another reload) is not
  // one that cannot be reached: the call may still be going on there
  const late = (err: unknown) =>
    signal.aborted ? nyalaError('NYALA_ERR_ADMIN_TIMEOUT', { url, seconds: waitMs / 1000 }, err) : undefined
  let res: Response
  try {
    res = await fetch(url, {
      method,
      headers,
      ...(bundle ? { body: bundle } : {}),
      signal,
    })
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause
    const reason = reasonOf(cause ?? err)
    throw (
      late(err) ??
      nyalaError(
        'NYALA_ERR_ADMIN_UNREACHABLE',
        { url, reason: target.note ? `${reason} (${target.note})` : reason },
        err,
      )
    )
  }
  let text: string
  try {
    text = await res.text()
  } catch (err) {
    throw (
      late(err) ??
      nyalaError('NYALA_ERR_ADMIN_RESPONSE', { url, status: res.status, reason: reasonOf(err) }, err)
    )
  }
  let body: Record<string, unknown>
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw nyalaError('NYALA_ERR_ADMIN_RESPONSE', { url, status: res.status, reason: text.slice(0, 200) })
  }
  if (res.status >= 400 && res.status !== 422 && !isNyalaError(body)) {
    throw nyalaError('NYALA_ERR_ADMIN_RESPONSE', {
      url,
      status: res.status,
      reason: String(body.message ?? text),
    })
  }
  return { status: res.status, body }
}

export const adminFlags = {
  root: { type: 'string' },
  config: { type: 'string' },
  admin: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

export const adminFlagsHelp = `  --root DIR       root of the running host (default: .)
  --config FILE    its configuration file
                   (default: <root>/config/impala.properties)
  --admin URL      the admin API's URL (default: found from the root; not
                   with --root or --config)
  --token T        admin.token (default: NYALA_ADMIN_TOKEN, else the root's
                   configuration's; with --admin, NYALA_ADMIN_TOKEN only)
  --json           print the admin API's JSON answer
  -h, --help       show this help`
