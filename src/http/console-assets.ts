import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

/** One file of the operator console, ready to send: compressed once, named by its content. */
export interface ConsoleAsset {
  /** URL path: `/` for the page, `/console/<name>.<hash>.<ext>` for the rest. */
  readonly path: string
  readonly type: string
  readonly etag: string
  /** Hashed names never change content: cached for a year. The page is revalidated. */
  readonly immutable: boolean
  readonly identity: Buffer
  readonly gzip: Buffer
  readonly br: Buffer
}

const dir = new URL('../../console/', import.meta.url)
const types: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  html: 'text/html; charset=utf-8',
}

function asset(path: string, type: string, body: Buffer, immutable: boolean): ConsoleAsset {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16)
  return Object.freeze({
    path,
    type,
    etag: `"${hash}"`,
    immutable,
    identity: body,
    gzip: gzipSync(body, { level: 9 }),
    br: brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
  })
}

/**
 * Reads the console's files (the `console/` folder shipped with the package),
 * names each by the hash of its content and writes those names into the page,
 * so a browser caches them forever and still never runs a stale script after
 * an upgrade. Done once per admin listener: a few kilobytes.
 */
export function loadConsoleAssets(): ReadonlyMap<string, ConsoleAsset> {
  const out = new Map<string, ConsoleAsset>()
  let page = readFileSync(new URL('index.html', dir), 'utf8')
  for (const name of ['app.js', 'style.css', 'favicon.svg']) {
    const body = readFileSync(new URL(name, dir))
    const dot = name.lastIndexOf('.')
    const ext = name.slice(dot + 1)
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 12)
    const path = `/console/${name.slice(0, dot)}.${hash}.${ext}`
    out.set(path, asset(path, types[ext] ?? 'application/octet-stream', body, true))
    page = page.replaceAll(`{{${name}}}`, path)
  }
  out.set('/', asset('/', types.html!, Buffer.from(page), false))
  return out
}

/**
 * The console's Content-Security-Policy: everything from the admin listener
 * itself, no inline script or style, no eval, no frames, no form posts
 * elsewhere.
 */
export const consolePolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')
