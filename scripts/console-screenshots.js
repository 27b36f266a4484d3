// Writes docs/console-desktop.png (1280x800) and docs/console-phone.png (390x844): a host serving
// the example modules in a temporary root, a few requests and one reload so the figures and the
// history are not empty, the page opened in Debian's Chromium (playwright-core).
// Run after `npm run build`: node scripts/console-screenshots.js
import { spawn } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'
import { packDirectory } from '../dist/bundle/pack.js'

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const work = await mkdtemp(path.join(tmpdir(), 'nyala-shots-'))
let host
let browser
try {
  await mkdir(path.join(work, 'modules'))
  await mkdir(path.join(work, 'config'))
  await writeFile(
    path.join(work, 'config', 'impala.properties'),
    'port=0\nadmin.port=0\nauto.reload.modules=true\nauto.reload.monitoring.type=tmpfile, stagingDirectory\n',
  )
  await cp(path.join(root, 'config', 'billing.properties'), path.join(work, 'config', 'billing.properties'))
  for (const d of await readdir(path.join(root, 'examples'), { withFileTypes: true })) {
    if (d.isDirectory()) {
      await packDirectory(path.join(root, 'examples', d.name), {
        out: path.join(work, 'modules', `${d.name}.zip`),
      })
    }
  }
  host = spawn(
    process.execPath,
    [path.join(root, 'dist', 'cli.js'), 'start', '--root', work, '--log-format', 'json'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  )
  const ports = await new Promise((resolve, reject) => {
    let out = ''
    host.stdout.on('data', (d) => {
      out += d
      const m = /"port":(\d+),"adminHost":"[^"]+","adminPort":(\d+)/.exec(out)
      if (m) resolve({ port: Number(m[1]), admin: Number(m[2]) })
    })
    host.on('exit', (code) => reject(new Error(`host exited with ${code}`)))
  })
  const app = (p) => `http://127.0.0.1:${ports.port}${p}`
  const admin = (p) => `http://127.0.0.1:${ports.admin}${p}`
  for (let i = 0; i < 200; i++)
    await fetch(app(i % 2 ? '/hello?name=Nyala' : '/customers')).then((r) => r.text())
  await fetch(admin('/modules/core/reload?force=true'), { method: 'POST' })
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  for (const [name, viewport] of [
    ['desktop', { width: 1280, height: 800 }],
    ['phone', { width: 390, height: 844 }],
  ]) {
    const page = await browser.newPage({ viewport })
    await page.goto(admin('/'))
    await page.waitForSelector('html[data-rendered]')
    await page.waitForFunction(() => document.getElementById('live').dataset.live === 'open')
    const file = path.join(root, 'docs', `console-${name}.png`)
    await page.screenshot({ path: file, fullPage: name === 'phone' })
    console.log(`wrote ${path.relative(root, file)}`)
    await page.close()
  }
} finally {
  await browser?.close()
  host?.kill('SIGTERM')
  await rm(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 })
}
