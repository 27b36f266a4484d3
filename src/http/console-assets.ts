import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'

/** One file of the operator console, ready to send: compressed once, named by its content. */
export interface ConsoleAsset {
  /** URL path: `/console/<name>.<hash>.<ext>`. */
  readonly path: string
  readonly type: string
  readonly etag: string
  readonly identity: Buffer
  readonly gzip: Buffer
  readonly br: Buffer
}

const dir = new URL('../../console/', import.meta.url)
const types: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  svg: 'image/svg+xml',
}

function asset(path: string, type: string, body: Buffer): ConsoleAsset {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16)
  return Object.freeze({
    path,
    type,
    etag: `"${hash}"`,
    identity: body,
    gzip: gzipSync(body, { level: 9 }),
    br: brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
  })
}

/**
 * Reads the console's files (the `console/` folder shipped with the package),
 * names each by the hash of its content and writes those names into the page,
 * so a browser caches them forever and still never runs a stale script after
 * an upgrade. The stylesheet is written into the page itself: a stylesheet
 * fetched apart holds the first paint for one more request (and Chromium lays
 * the page out once without it when parsing ends first); the Content-Security-
 * Policy allows that one stylesheet by its hash. Done once per admin listener:
 * a few kilobytes. The page itself is a template: the admin listener fills in
 * the modules on every request (src/http/console-routes.ts).
 */
export function loadConsoleAssets(): {
  assets: ReadonlyMap<string, ConsoleAsset>
  page: string
  policy: string
} {
  const out = new Map<string, ConsoleAsset>()
  let page = readFileSync(new URL('index.html', dir), 'utf8')
  for (const name of ['app.js', 'favicon.svg']) {
    const body = readFileSync(new URL(name, dir))
    const dot = name.lastIndexOf('.')
    const ext = name.slice(dot + 1)
    const hash = createHash('sha256').update(body).digest('hex').slice(0, 12)
    const path = `/console/${name.slice(0, dot)}.${hash}.${ext}`
    out.set(path, asset(path, types[ext] ?? 'application/octet-stream', body))
    page = page.replaceAll(`{{${name}}}`, path)
  }
  const style = readFileSync(new URL('style.css', dir), 'utf8')
  page = page.replace(/\/\* \{\{style\.css\}\}[^*]*\*\//, () => style)
  // every <style> of the page (the stylesheet, the one for pages without scripts), by its hash
  const hashes = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) =>
    createHash('sha256').update(m[1]!).digest('base64'),
  )
  return { assets: out, page, policy: consolePolicy(hashes) }
}

/**
 * The console's Content-Security-Policy: everything from the admin listener
 * itself, no inline script, no eval, no frames, no form posts elsewhere; the
 * page's own inline stylesheets by their hashes (no other inline style).
 */
export const consolePolicy = (styleHashes: readonly string[]): string =>
  [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' ${styleHashes.map((h) => `'sha256-${h}'`).join(' ')}`,
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
