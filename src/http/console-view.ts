import { createHash } from 'node:crypto'
import type { MinuteStats } from '../runtime/request-stats.js'
import { depsIn, failedExtraH, type GraphModule, layoutGraph, nodeH, nodeW } from './console-layout.js'

/** What the page shows of a module: a row of `GET /modules`. */
export interface ConsoleModule extends GraphModule {
  readonly version: string | null
  readonly generation: number | null
  readonly prefix: string | null
  readonly inflight: number
  readonly crashes: number
  readonly registered: boolean
  readonly error: { readonly code: string; readonly message: string } | null
  readonly lastReload: { readonly at: string; readonly ms: number } | null
  readonly lastError: { readonly code: string; readonly message: string; readonly at: string } | null
  /** With worker processes: the generation each worker serves, and whether they are the same. */
  readonly workers?: { readonly generations: readonly (number | null)[]; readonly same: boolean }
}

/** The generation cell's text: with workers that differ, each worker's after it (e.g. `3 · 3/2`). */
export function generationText(m: ConsoleModule): string {
  const base = m.generation === null ? '–' : String(m.generation)
  if (!m.workers || m.workers.same) return base
  return `${base} · ${m.workers.generations.map((g) => g ?? '–').join('/')}`
}

const entities: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
}
/**
 * Characters XML does not allow, even escaped (C0 controls but tab and line ends, lone
 * surrogates, U+FFFE/U+FFFF): an error text with an ANSI colour code in it made the graph's SVG
 * a document the page's XML parser refuses, so nothing was drawn.
 */
const notXml =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters it removes
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g
/** Module names, versions and error texts come from bundles: always escaped, and fit for HTML and for XML alike. */
export const esc = (value: unknown): string =>
  String(value)
    .replace(notXml, '\uFFFD')
    .replace(/[&<>"']/g, (c) => entities[c]!)

const formatRate = (rps: number) => (rps >= 100 ? String(Math.round(rps)) : rps.toFixed(rps >= 10 ? 1 : 2))
const formatMs = (ms: number) => (ms >= 100 ? `${Math.round(ms)} ms` : `${ms.toFixed(ms >= 10 ? 1 : 2)} ms`)
/** The server does not know the browser's time zone: UTC, which the page's script turns local. */
const time = (iso: string) => `<time datetime="${esc(iso)}">${esc(iso.slice(11, 19))} UTC</time>`
const clip = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text)

export function summaryOf(modules: readonly ConsoleModule[]): string {
  const running = modules.filter((m) => m.state === 'running').length
  const failed = modules.filter((m) => m.state === 'failed').length
  return `${modules.length} modules: ${running} running, ${failed} failed`
}

/**
 * The last minute's requests per second as a line, 1 unit per pixel of its 20 px height; the
 * inner points of a flat run are left out (an idle module's line is two points, not sixty).
 */
export function sparkPoints(values: readonly number[]): string {
  const max = Math.max(1, ...values)
  const ys = values.map((v) => Math.round(19 - (v / max) * 18))
  return ys
    .map((y, i) => (y !== ys[i - 1] || y !== ys[i + 1] ? `${i},${y}` : ''))
    .filter(Boolean)
    .join(' ')
}

const sparkline = (values: readonly number[]) =>
  `<svg class="spark" viewBox="0 0 60 20" preserveAspectRatio="none" role="img" aria-label="requests per second over the last minute"><polyline points="${sparkPoints(values)}"/></svg>`

function lastReloadCell(m: ConsoleModule): string {
  const last = m.lastReload
  const err = m.lastError
  if (err && (!last || err.at > last.at))
    return `<td class="reload-cell" title="${esc(err.message)}"><span>${time(err.at)} refused: </span><span class="error">${esc(err.code)}</span></td>`
  if (last) return `<td class="reload-cell">${time(last.at)} · ${Math.round(last.ms)} ms · ok</td>`
  return '<td class="reload-cell">–</td>'
}

/**
 * Rows the page sends complete (with their small chart), and the page's first part: more
 * than a first screen shows (about 5 rows at 1280x800 under the graph, 6 on a 390x844 phone, 25
 * on a 1440p screen). The response is sent in two parts (src/http/console-routes.ts): the head
 * and these rows first, flushed, then the other rows (as text until the script puts them in,
 * `moreRows`); the page's first paint waits for the last of these rows (`<link rel="expect"
 * href="#first-screen-end" blocking="render">`), not for the others. Those come without chart,
 * which the page's script adds: they are off screen. No row comes with its action buttons: they
 * work through the script only, which puts them in right after the first paint (a page without
 * scripts showed buttons that did nothing, and the first paint laid out 90 buttons; the cell
 * keeps their room, style.css). Every row carries its data (name, state, generation, ...) either
 * way.
 */
export const completeRows = 30

/** The id of the first part's last row, which the page's first paint waits for (console/index.html). */
export const firstScreenEnd = 'first-screen-end'

/** One row of the module table, as app.js draws it (the page's script keeps it up to date). */
function row(m: ConsoleModule, stats: MinuteStats | undefined, complete: boolean, last: boolean): string {
  const dash = (v: unknown) => (v == null ? '–' : esc(v))
  const stateCell = m.error
    ? `<td title="${esc(m.error.message)}"><span class="state ${esc(m.state)}">${esc(m.state)}</span><br><span class="error">${esc(m.error.code)}</span></td>`
    : `<td><span class="state ${esc(m.state)}">${esc(m.state)}</span></td>`
  const rate = stats ? `${formatRate(stats.rps)}${complete ? sparkline(stats.perSecond) : ''}` : '–'
  return [
    `<tr data-module="${esc(m.name)}"${last ? ` id="${firstScreenEnd}"` : ''}><th scope="row">${esc(m.name)}</th>`,
    `<td>${dash(m.version)}</td>`,
    stateCell,
    `<td data-generation="${m.generation ?? ''}"${m.workers ? ` title="per worker: ${m.workers.generations.map((g) => g ?? '–').join(', ')}"` : ''}>${esc(generationText(m))}</td>`,
    `<td>${dash(m.prefix)}</td>`,
    `<td>${m.inflight}</td>`,
    `<td>${rate}</td>`,
    `<td>${stats?.p99Ms == null ? '–' : formatMs(stats.p99Ms)}</td>`,
    `<td>${m.crashes}</td>`,
    lastReloadCell(m),
    // the buttons work through the script only, which puts them in (console/app.js, addActions)
    `<td class="actions-cell" data-registered="${m.registered}"></td></tr>`,
  ].join('')
}

/** The id of the `<noscript>` holding the rows after the first part (console/app.js reads it). */
export const moreRowsId = 'more-rows'

/**
 * The rows after the response's first part, inside a `<noscript>` after the table. With scripts
 * on, the parser reads it as one text node: those rows are not built, styled or laid out before
 * the first paint (parsing and styling the rows below the first screen was about half of the
 * renderer's main-thread work before it at 200 modules); the page's script parses them and puts
 * them in the table right after that paint, before it asks for anything. Without scripts they
 * are a table of their own right under the first (the same column tracks, style.css), with every
 * row's data. Every value in them is escaped, so nothing in a row can end the `<noscript>` early.
 */
export const moreRows = (rest: string): string =>
  rest === ''
    ? ''
    : `<noscript id="${moreRowsId}"><table class="more"><tbody>\n${rest}\n</tbody></table></noscript>`

/** The module table's rows: those of the response's first part (the first screen) and the rest. */
export function tableRows(
  modules: readonly ConsoleModule[],
  stats: ReadonlyMap<string, MinuteStats> | undefined,
): { readonly first: string; readonly rest: string } {
  const drawn = (list: readonly ConsoleModule[], offset: number) =>
    list
      .map((m, i) => row(m, stats?.get(m.name), offset + i < completeRows, offset + i === completeRows - 1))
      .join('\n')
  return {
    first: drawn(modules.slice(0, completeRows), 0),
    rest: drawn(modules.slice(completeRows), completeRows),
  }
}

/** Changes whenever the drawing would (a hash, sent back by the page): a new graph is sent only then. */
export const graphKey = (modules: readonly ConsoleModule[]): string =>
  createHash('sha256')
    .update(
      modules
        .map(
          (m) =>
            `${m.name}:${m.state}:${m.generation}:${m.error?.code ?? ''}:${m.error?.message ?? ''}:${[...m.dependsOn, '?', ...m.optionalDependsOn].join('+')}`,
        )
        .join('|'),
    )
    .digest('hex')
    .slice(0, 16)

/**
 * The module graph as one `<svg>`: nodes coloured by state, arrows from a module to what it
 * depends on. `data-bounds` is the drawing's extent, which the page's zoom and pan work in;
 * the viewBox is the page's "Fit" (never smaller than 600 x 300 units, so four modules stay
 * readable).
 */
export function graphSvg(modules: readonly ConsoleModule[], key = graphKey(modules)): string {
  const { pos, width, height } = layoutGraph(modules)
  const names = new Set(pos.keys())
  const edges: string[] = []
  const nodes: string[] = []
  for (const m of modules) {
    const p = pos.get(m.name)!
    for (const dep of depsIn(m, names)) {
      const q = pos.get(dep)!
      const y1 = p.y + nodeH / 2
      const x2 = q.x + nodeW
      const y2 = q.y + nodeH / 2
      const mid = (p.x + x2) / 2
      edges.push(
        `<path class="edge" marker-end="url(#arrow)" data-from="${esc(m.name)}" data-to="${esc(dep)}" d="M${p.x},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}"/>`,
      )
    }
    const label = `${clip(m.name, 16)}${m.generation ? ` · g${m.generation}` : ''}`
    const title = `${m.name}: ${m.state}${m.error ? ` (${m.error.code}: ${m.error.message})` : ''}`
    const code =
      m.state === 'failed' && m.error
        ? `<text x="8" y="34" class="code">${esc(clip(m.error.code.replace('NYALA_ERR_', ''), 24))}</text>`
        : ''
    nodes.push(
      `<g class="node ${esc(m.state)}" data-node="${esc(m.name)}" transform="translate(${p.x},${p.y})"><rect width="${nodeW}" height="${nodeH + (m.state === 'failed' ? failedExtraH : 0)}" rx="4"/><text x="8" y="19">${esc(label)}</text><title>${esc(title)}</title>${code}</g>`,
    )
  }
  const b = { x: -10, y: -10, w: width + 20, h: Math.max(height + 20, nodeH + 20) }
  const fit = `${b.x} ${b.y} ${Math.max(b.w, 600)} ${Math.max(b.h, 300)}`
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="module graph: ${modules.length} modules" viewBox="${fit}" data-bounds="${b.x} ${b.y} ${b.w} ${b.h}" data-key="${esc(key)}">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>',
    `<g>${edges.join('')}</g><g>${nodes.join('')}</g></svg>`,
  ].join('')
}
