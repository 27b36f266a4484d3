// SVG charts drawn from measured data (no figures of their own): latency over time during reloads.

const esc = (s) =>
  String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
const fmt = (v) => (Math.round(v * 10) / 10).toString()

/**
 * Latency over time for one contender, log-scale y axis.
 * @param {{ title: string, durationMs: number, bucketMs: number,
 *   buckets: { t: number, p50?: number, max?: number, failed: number }[],
 *   changeWindows: { start: number, end: number }[], changes: number[], yMaxMs: number,
 *   yMinMs?: number }} data  times in ms from the start of the measured phase
 */
export function latencyChart(data) {
  const width = 760
  const height = 240
  const left = 56
  const right = 12
  const top = 28
  const bottom = 40
  const plotW = width - left - right
  const plotH = height - top - bottom
  const yMin = data.yMinMs ?? 0.1
  const yMax = Math.max(data.yMaxMs, yMin * 10)
  const x = (t) => left + (Math.max(0, Math.min(t, data.durationMs)) / data.durationMs) * plotW
  const y = (ms) => {
    const v = Math.min(Math.max(ms, yMin), yMax)
    return top + plotH - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * plotH
  }
  const parts = []
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<title>${esc(data.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    `<text x="${left}" y="16" font-size="13" font-weight="bold">${esc(data.title)}</text>`,
  )
  for (const w of data.changeWindows) {
    parts.push(
      `<rect x="${fmt(x(w.start))}" y="${top}" width="${fmt(Math.max(1, x(w.end) - x(w.start)))}" height="${plotH}" fill="#fdf1dc"/>`,
    )
  }
  // y grid: decades
  for (let d = Math.ceil(Math.log10(yMin)); d <= Math.floor(Math.log10(yMax)); d++) {
    const v = 10 ** d
    const yy = fmt(y(v))
    parts.push(
      `<line x1="${left}" x2="${width - right}" y1="${yy}" y2="${yy}" stroke="#ddd"/>`,
      `<text x="${left - 4}" y="${yy}" text-anchor="end" dominant-baseline="middle">${v >= 1 ? v : v.toFixed(-d)} ms</text>`,
    )
  }
  // x ticks: whole seconds, at most ~20 labels
  const seconds = data.durationMs / 1000
  const step = Math.max(1, Math.ceil(seconds / 20))
  for (let s = 0; s <= seconds; s += step) {
    const xx = fmt(x(s * 1000))
    parts.push(
      `<line x1="${xx}" x2="${xx}" y1="${top + plotH}" y2="${top + plotH + 4}" stroke="#333"/>`,
      `<text x="${xx}" y="${top + plotH + 15}" text-anchor="middle">${s}</text>`,
    )
  }
  parts.push(
    `<text x="${left + plotW / 2}" y="${height - 6}" text-anchor="middle">seconds (shaded: change windows; dashed: file changed; red: failed requests)</text>`,
  )
  for (const t of data.changes) {
    const xx = fmt(x(t))
    parts.push(
      `<line x1="${xx}" x2="${xx}" y1="${top}" y2="${top + plotH}" stroke="#c77" stroke-dasharray="3,3"/>`,
    )
  }
  const line = (key, color) => {
    const pts = data.buckets
      .filter((b) => Number.isFinite(b[key]))
      .map((b) => `${fmt(x(b.t))},${fmt(y(b[key]))}`)
    if (pts.length > 1) {
      parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.2" points="${pts.join(' ')}"/>`)
    }
  }
  line('max', '#e08a2c')
  line('p50', '#2c6be0')
  const failMax = Math.max(1, ...data.buckets.map((b) => b.failed))
  for (const b of data.buckets) {
    if (b.failed <= 0) continue
    const h = 4 + (b.failed / failMax) * 26
    const bw = Math.max(2, (data.bucketMs / data.durationMs) * plotW)
    parts.push(
      `<rect x="${fmt(x(b.t))}" y="${fmt(top + plotH - h)}" width="${fmt(bw)}" height="${fmt(h)}" fill="#d22"/>`,
    )
  }
  parts.push(
    `<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`,
    `<line x1="${width - 250}" x2="${width - 232}" y1="16" y2="16" stroke="#2c6be0" stroke-width="2"/>`,
    `<text x="${width - 228}" y="20">p50</text>`,
    `<line x1="${width - 196}" x2="${width - 178}" y1="16" y2="16" stroke="#e08a2c" stroke-width="2"/>`,
    `<text x="${width - 174}" y="20">max per ${fmt(data.bucketMs)} ms</text>`,
    '</svg>',
  )
  return `${parts.join('\n')}\n`
}
