// The operator console (issue 17) in a real browser: playwright-core driving Debian's Chromium
// against a real host. Every module and the graph drawn, a reload seen live without reloading
// the page, a refusal with its code, the actions (forced reload, unregister, deploy of a file
// chosen in the page), the token asked once, a phone-sized viewport, contrast and the CSP.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { copyFile, cp, readdir, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import { chromium } from 'playwright-core'
import { completeRows, firstScreenEnd, moreRowsId } from '../dist/http/console-view.js'
import {
  deploy,
  getChunks,
  makeRoot,
  moduleSource,
  modulesOf,
  packWithNyala,
  packWithZip,
  projectRoot,
  request,
  startHost,
} from './helpers.js'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

async function browserFor(t) {
  assert.ok(existsSync(executablePath), `Chromium not found at ${executablePath} (apt-get install chromium)`)
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  t.after(() => browser.close())
  return browser
}

/** A page that fails the test on a script error or a console error such as a CSP violation. */
async function openPage(t, browser, url, viewport = { width: 1280, height: 800 }) {
  const page = await browser.newPage({ viewport })
  const errors = []
  page.on('console', (m) => {
    // network failures are logged too (each 401 of the token flow, the event stream cut when the
    // host stops): the assertions check what the page shows; what is collected here is script
    // errors and Content-Security-Policy violations ("Refused to ...")
    if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) errors.push(m.text())
  })
  page.on('pageerror', (e) => errors.push(String(e)))
  t.after(() => assert.deepEqual(errors, [], 'no console or page errors'))
  await page.goto(url)
  return page
}

const settings = [
  'port=0',
  'host=127.0.0.1',
  'auto.reload.modules=true',
  'auto.reload.monitoring.type=tmpfile, stagingDirectory',
  'auto.reload.settle.ms=50',
  '',
].join('\n')

/** The example modules (as `npm start` serves them), plus one that fails to register. */
async function exampleRoot(t, extra = '') {
  const root = await makeRoot(t, settings + extra)
  const examples = path.join(projectRoot, 'examples')
  const names = (await readdir(examples, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
  for (const n of names) await packWithNyala(path.join(examples, n), path.join(modulesOf(root), `${n}.zip`))
  await cp(
    path.join(projectRoot, 'config', 'billing.properties'),
    path.join(root, 'config', 'billing.properties'),
  )
  // its error carries an ANSI colour code, as errors from many libraries do: a character XML does
  // not allow, which once left the graph (an SVG parsed as XML by the page) undrawn
  await deploy(root, 'broken', {
    files: {
      'index.js': 'module.exports = { register () { throw new Error("\\u001b[31mno\\u001b[0m") } }\n',
    },
  })
  return { root, names: [...names, 'broken'] }
}

const genOf = (page, name) =>
  page.locator(`tr[data-module="${name}"] [data-generation]`).getAttribute('data-generation')

async function waitGeneration(page, name, generation) {
  await page.waitForSelector(`tr[data-module="${name}"] [data-generation="${generation}"]`, {
    timeout: 30_000,
  })
}

/** Relative luminance contrast of two CSS colours (rgb()/rgba()). */
function contrast(fg, bg) {
  const lum = (c) => {
    const [r, g, b] = c
      .match(/[\d.]+/g)
      .slice(0, 3)
      .map(Number)
    const lin = (v) => {
      const s = v / 255
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4
    }
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
  }
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x)
  return (a + 0.05) / (b + 0.05)
}

test('the console shows every module and the graph, follows reloads live, and acts', async (t) => {
  const { root, names } = await exampleRoot(t)
  const host = await startHost(t, root)
  const browser = await browserFor(t)

  // the page: strict CSP, compressed, cached by content hash
  const head = await fetch(host.admin('/'), { headers: { 'accept-encoding': 'br' } })
  const csp = head.headers.get('content-security-policy')
  assert.match(csp, /script-src 'self'/)
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/)
  assert.equal(head.headers.get('content-encoding'), 'br')
  const html = await head.text()
  const script = /src="(\/console\/app\.[0-9a-f]+\.js)"/.exec(html)?.[1]
  assert.ok(script, 'the page loads its script by a hashed name')
  const asset = await fetch(host.admin(script))
  assert.match(asset.headers.get('cache-control'), /immutable/)
  assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]/, 'no inline script in the page')

  const page = await openPage(t, browser, host.admin('/'))
  // no request leaves the host: every URL the page asks for is on the admin listener
  const origin = new URL(host.admin('/')).origin
  const requested = []
  page.on('request', (r) => requested.push(r.url()))
  await page.reload()
  await page.waitForSelector('html[data-rendered]')
  for (const name of names) {
    assert.equal(await page.locator(`tr[data-module="${name}"]`).count(), 1, `row of ${name}`)
    assert.equal(await page.locator(`#graph .node[data-node="${name}"]`).count(), 1, `node of ${name}`)
  }
  const edges = (await request(host.admin('/modules'))).body.modules.reduce(
    (n, m) => n + m.dependsOn.length + m.optionalDependsOn.filter((d) => names.includes(d)).length,
    0,
  )
  assert.equal(await page.locator('#graph .edge').count(), edges, 'one arrow per dependency')
  assert.equal(await genOf(page, 'hello'), '1')
  // the failed module: its code in the row and on its node, drawn in the failed colour
  assert.match(
    await page.locator('tr[data-module="broken"]').textContent(),
    /NYALA_ERR_MODULE_REGISTER_FAILED/,
  )
  assert.match(await page.locator('#graph .node[data-node="broken"]').getAttribute('class'), /failed/)
  assert.match(await page.locator('#graph .node[data-node="broken"]').textContent(), /MODULE_REGISTER_FAILED/)

  // readable contrast: every state label and node label against what is behind it
  const pairs = await page.evaluate(() => {
    const out = []
    for (const el of document.querySelectorAll('.state, th, td, #graph .node text')) {
      const fg = getComputedStyle(el).color
      const fill = el.closest('.node')
        ? getComputedStyle(el.closest('.node').querySelector('rect')).fill
        : undefined
      out.push({ fg: el.closest('.node') ? getComputedStyle(el).fill : fg, bg: fill ?? 'rgb(255, 255, 255)' })
    }
    return out
  })
  for (const { fg, bg } of pairs)
    assert.ok(contrast(fg, bg) >= 4.5, `contrast ${fg} on ${bg}: ${contrast(fg, bg)}`)

  // a click on a node takes the keyboard to its row; the focus stays there while the page polls
  // (every row was taken out and put back on each update, and the focused button with it)
  await page.locator('#graph .node[data-node="billing"] rect').click()
  const focusedRow = () => page.evaluate(() => document.activeElement?.closest('tr')?.dataset.module)
  assert.equal(await focusedRow(), 'billing', 'a click on a node focuses its row')
  for (let i = 0; i < 2; i++) await page.waitForResponse((r) => new URL(r.url()).pathname === '/stats')
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(r)))
  assert.equal(await focusedRow(), 'billing', 'the focus survives the updates')

  // a .tmp dropped beside hello: the page shows generation 2 without being reloaded
  const v2 = await moduleSource(root, 'hello-v2', { fields: { version: '2.0.0' } })
  const bundle = await packWithNyala(v2, path.join(root, 'src', 'hello-v2.zip'))
  await copyFile(bundle, path.join(modulesOf(root), 'hello.zip.part'))
  await rename(path.join(modulesOf(root), 'hello.zip.part'), path.join(modulesOf(root), 'hello.zip.tmp'))
  await waitGeneration(page, 'hello', 2)
  await page.waitForSelector('#events li.swapped')

  // a broken .tmp: refused with its code, the generation stays
  await writeFile(path.join(modulesOf(root), 'hello.zip.part'), 'not a zip')
  await rename(path.join(modulesOf(root), 'hello.zip.part'), path.join(modulesOf(root), 'hello.zip.tmp'))
  await page.waitForSelector('#events li.failed')
  assert.match(await page.locator('#events li.failed').first().textContent(), /NYALA_ERR_BUNDLE_NOT_ZIP/)
  await page.waitForFunction(() =>
    /NYALA_ERR_BUNDLE_NOT_ZIP/.test(document.querySelector('tr[data-module="hello"]').textContent),
  )
  assert.equal(await genOf(page, 'hello'), '2')

  // a forced reload asks first; cancelled, nothing happens; confirmed, core and its dependents reload
  const row = page.locator('tr[data-module="core"]')
  await row.getByRole('button', { name: 'Force reload' }).click()
  await page.locator('#confirm-dialog').getByRole('button', { name: 'Cancel' }).click()
  assert.equal(await genOf(page, 'core'), '1')
  await row.getByRole('button', { name: 'Force reload' }).click()
  await page.locator('#confirm-dialog').getByRole('button', { name: 'Confirm' }).click()
  await waitGeneration(page, 'core', 2)
  await waitGeneration(page, 'billing', 2)

  // unregister (asks), then register again (does not). Names match exactly: Playwright matches a
  // substring by default, and "Register" is in "Unregister" (the wait then passed at once, before
  // the unregistering was done: a failure under load)
  await row.getByRole('button', { name: 'Unregister', exact: true }).click()
  await page.locator('#confirm-dialog').getByRole('button', { name: 'Confirm' }).click()
  await row.getByRole('button', { name: 'Register', exact: true }).waitFor()
  assert.equal((await request(host.admin('/modules/core'))).body.registered, false)
  await row.getByRole('button', { name: 'Register', exact: true }).click()
  await row.getByRole('button', { name: 'Unregister', exact: true }).waitFor()
  assert.equal((await request(host.admin('/modules/core'))).body.registered, true)

  // deploy a file chosen in the page: uploaded, staged, and the verdict shown
  const v3 = await moduleSource(root, 'hello-v3', { fields: { version: '3.0.0' } })
  const v3zip = await packWithNyala(v3, path.join(root, 'src', 'v3', 'hello.zip'))
  await page.setInputFiles('#deploy-file', v3zip)
  await page.getByRole('button', { name: 'Deploy' }).click()
  await page.locator('#confirm-dialog').getByRole('button', { name: 'Confirm' }).click()
  await page
    .waitForFunction(() => /hello now at generation 3/.test(document.getElementById('notice').textContent))
    .catch(async (err) => {
      // what the page said and what the host did, so that a failure in CI can be read
      const notice = await page.locator('#notice').textContent()
      const events = await page.locator('#events').textContent()
      const logs = host
        .stdout()
        .split('\n')
        .filter((l) => /deploy|hello|staging/.test(l))
      throw new Error(
        `${err.message}\nnotice: ${notice}\nevents: ${events}\nhost: ${logs.slice(-30).join('\n')}`,
      )
    })
  await waitGeneration(page, 'hello', 3)
  await page.waitForFunction(() =>
    /3\.0\.0/.test(document.querySelector('tr[data-module="hello"]').textContent),
  )

  // filter by name: other rows hide, other nodes dim
  await page.fill('#filter', 'bill')
  assert.equal(await page.locator('tbody tr:not(.hidden)').count(), 1)
  assert.match(await page.locator('#graph .node[data-node="hello"]').getAttribute('class'), /dim/)
  await page.fill('#filter', '')

  assert.ok(requested.length > 3, 'the page made its requests')
  const elsewhere = requested.filter((u) => new URL(u).origin !== origin)
  assert.deepEqual(elsewhere, [], 'no request leaves the host')

  // keyboard: Tab from the filter reaches the graph and the row buttons
  await page.focus('#filter')
  const reached = new Set()
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab')
    reached.add(await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent))
  }
  assert.ok(reached.has('zoom-fit'), `the zoom buttons are reachable by keyboard: ${[...reached]}`)
  assert.ok(reached.has('graph'), `the graph is reachable by keyboard: ${[...reached]}`)
  assert.ok(reached.has('Reload'), `row actions are reachable by keyboard: ${[...reached]}`)
})

test('with an admin token the page asks once and keeps it for the tab; a phone-sized viewport works', async (t) => {
  const { root, names } = await exampleRoot(t, 'admin.token=s3cret\n')
  const host = await startHost(t, root)
  assert.equal((await request(host.admin('/modules'))).status, 401, 'the API needs the token')
  const browser = await browserFor(t)
  const page = await openPage(t, browser, host.admin('/'), { width: 390, height: 844 })
  await page.locator('#token-dialog').waitFor()
  // Escape closes the prompt: the page says what it waits for and offers the prompt again
  await page.keyboard.press('Escape')
  await page.locator('#notice').getByRole('button', { name: 'Enter the admin token' }).click()
  await page.locator('#token-dialog[open]').waitFor()
  await page.fill('#token-input', 'wrong')
  await page.locator('#token-dialog').getByRole('button', { name: 'Use token' }).click()
  await page.waitForFunction(() => /refused/.test(document.getElementById('token-error').textContent))
  await page.fill('#token-input', 's3cret')
  await page.locator('#token-dialog').getByRole('button', { name: 'Use token' }).click()
  await page.waitForSelector('html[data-rendered]')
  assert.equal(await page.locator('tbody tr').count(), names.length)
  assert.equal(await page.locator('#token-again').count(), 0, 'the offer is gone once a token is given')
  assert.equal(await page.evaluate(() => sessionStorage.getItem('nyala.admin.token')), 's3cret')
  await page.waitForFunction(() => document.getElementById('live').dataset.live === 'open')
  // nothing wider than the phone's screen but the table's own scroll area
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px on a phone`)
  // a reload in another tab of the same session keeps the token: no second prompt
  await page.reload()
  await page.waitForSelector('html[data-rendered]')
  assert.equal(await page.locator('#token-dialog[open]').count(), 0)
})

test('the first view is drawn by the admin listener: every module without script, never for a caller the API refuses', async (t) => {
  const { root, names } = await exampleRoot(t)
  const host = await startHost(t, root)
  const browser = await browserFor(t)
  const described = (await request(host.admin('/modules'))).body.modules

  // with JavaScript off, the page as the listener sends it: rows, generations, graph, summary
  const context = await browser.newContext({
    javaScriptEnabled: false,
    viewport: { width: 1280, height: 800 },
  })
  t.after(() => context.close())
  const page = await context.newPage()
  const res = await page.goto(host.admin('/'))
  assert.equal(res.headers()['cache-control'], 'no-cache', 'the page changes with every reload')
  assert.match(res.headers()['content-security-policy'], /script-src 'self'/)
  for (const m of described) {
    const row = page.locator(`tr[data-module="${m.name}"]`)
    assert.equal(await row.count(), 1, `row of ${m.name}`)
    assert.equal(await genOf(page, m.name), m.generation === null ? '' : String(m.generation), m.name)
    assert.match(await row.textContent(), new RegExp(m.state))
    assert.equal(await page.locator(`#graph .node[data-node="${m.name}"]`).count(), 1, `node of ${m.name}`)
  }
  assert.equal(await page.locator('tbody tr').count(), names.length)
  assert.match(
    await page.locator('tr[data-module="broken"]').textContent(),
    /NYALA_ERR_MODULE_REGISTER_FAILED/,
  )
  assert.match(await page.locator('#summary').textContent(), new RegExp(`^${names.length} modules: `))
  // the table is displayed as a grid (style.css): Chromium still exposes a table of rows
  const cdp = await context.newCDPSession(page)
  const { nodes } = await cdp.send('Accessibility.getFullAXTree')
  const roles = nodes.map((n) => n.role?.value)
  assert.ok(roles.includes('table'), 'a table in the accessibility tree')
  assert.ok(roles.filter((r) => r === 'row').length >= names.length + 1, 'a row per module and the head')
  assert.ok(roles.includes('rowheader') && roles.includes('cell'), 'row headers and cells')

  // a page of another site (DNS rebinding, a form post) gets the page but not the modules, as the API refuses it
  const foreign = await request(host.admin('/'), { headers: { origin: 'http://evil.example' } })
  assert.equal(foreign.status, 200)
  assert.doesNotMatch(foreign.text, /data-module=/)
  assert.doesNotMatch(foreign.text, /data-rendered/)
  assert.match(foreign.text, /data-view="empty"/)
})

test('with more modules than a screenful, the page comes in two parts, the rows after the first screen without chart, no row with buttons, and the script completes them', async (t) => {
  const root = await makeRoot(t, settings)
  const count = completeRows + 3
  const names = Array.from({ length: count }, (_, i) => `m${String(i).padStart(2, '0')}`)
  await Promise.all(
    names.map(async (name) =>
      packWithZip(await moduleSource(root, name), path.join(modulesOf(root), `${name}.zip`)),
    ),
  )
  const host = await startHost(t, root)
  const served = (await request(host.admin('/modules'))).body.modules.map((m) => m.name)
  assert.equal(served.length, count)

  // as sent: every row with its data, the first `completeRows` with chart, the rest without, and
  // no row with buttons (they work through the script only): the cell says the registration
  const sent = (await request(host.admin('/'))).text
  const rows = sent.match(/<tr data-module="[^"]+"[^>]*>.*<\/tr>/g)
  assert.equal(rows.length, count)
  for (const [i, row] of rows.entries()) {
    assert.match(row, /data-generation="1"/)
    assert.doesNotMatch(row, /<button/, `no buttons in row ${i}`)
    assert.match(
      row,
      /<td class="actions-cell" data-registered="true"><\/td><\/tr>$/,
      `actions cell of row ${i}`,
    )
    assert.equal(/class="spark"/.test(row), i < completeRows, `chart in row ${i}`)
    // the first paint waits for the first screen's last row, marked by its id
    assert.equal(row.includes(`id="${firstScreenEnd}"`), i === completeRows - 1, `id of row ${i}`)
  }
  assert.match(sent, new RegExp(`<link rel="expect" href="#${firstScreenEnd}" blocking="render">`))
  // in two parts: the first ends with the first screen's rows, the other rows come after it
  const { headers, chunks: parts } = await getChunks(host.admin('/'))
  assert.equal(headers['transfer-encoding'], 'chunked')
  assert.ok(parts.length >= 2, `the page in ${parts.length} part(s)`)
  assert.equal(parts.join(''), sent)
  assert.equal(parts[0].match(/<tr data-module=/g).length, completeRows, 'the first screen in the first part')
  // the first part ends with the table (its last row the first screen's last); the other rows
  // come after it as text in a <noscript>, put in the table by the script after the first paint
  assert.match(parts[0], new RegExp(`id="${firstScreenEnd}"[^\n]*</tr>\\n\\s*</tbody>\\s*</table>\\n$`))
  assert.match(
    parts[1],
    new RegExp(`^<noscript id="${moreRowsId}"><table class="more"><tbody>\\n<tr data-module=`),
  )
  assert.equal(
    parts[1].match(/<tr data-module=/g).length,
    count - completeRows,
    'the other rows in the second part',
  )
  for (const gzip of ['br', 'gzip']) {
    const res = await fetch(host.admin('/'), { headers: { 'accept-encoding': gzip } })
    assert.equal(res.headers.get('content-encoding'), gzip)
    assert.equal(await res.text(), sent, `the page, ${gzip}`)
  }

  // the graph comes as text in a <noscript>, drawn by the script after the first paint
  assert.match(sent, /<noscript><svg xmlns=/)

  const browser = await browserFor(t)
  const page = await openPage(t, browser, host.admin('/'))
  await page.waitForSelector('html[data-ready]')
  assert.equal(await page.locator('#graph > svg .node').count(), count, 'the graph drawn')
  assert.equal(await page.locator('#graph noscript').count(), 0)
  // the rows after the first screen: in the table, in the host's order, their <noscript> gone
  assert.equal(await page.locator(`#${moreRowsId}`).count(), 0)
  assert.deepEqual(
    await page
      .locator('#modules tbody tr[data-module]')
      .evaluateAll((trs) => trs.map((tr) => tr.dataset.module)),
    served,
  )
  for (const name of served) {
    const row = page.locator(`tr[data-module="${name}"]`)
    assert.equal(await genOf(page, name), '1', `generation of ${name}`)
    assert.equal(await row.locator('button[data-action]').count(), 3, `buttons of ${name}`)
    assert.equal(await row.locator('svg.spark').count(), 1, `chart of ${name}`)
  }
  // rows held back from layout until the first paint (style.css) are like the others after it
  const visibility = (p, name) =>
    p.locator(`tr[data-module="${name}"]`).evaluate((tr) => getComputedStyle(tr).contentVisibility)
  assert.equal(await visibility(page, served.at(-1)), 'auto')
  // and without scripts, where nothing marks the first paint, from the start
  const noScript = await browser.newContext({
    javaScriptEnabled: false,
    viewport: { width: 1280, height: 800 },
  })
  t.after(() => noScript.close())
  const plain = await noScript.newPage()
  await plain.goto(host.admin('/'))
  assert.equal(await visibility(plain, served.at(-1)), 'auto')
  assert.equal(await plain.locator('#graph .node').count(), count, 'the graph shown from its <noscript>')
  assert.equal(await plain.locator('tbody tr[data-module]').count(), count)
  // without scripts the rows after the first screen are a table of their own, its columns where
  // the first table's are
  const left = (p, name, i) =>
    p
      .locator(`tr[data-module="${name}"] > :nth-child(${i})`)
      .evaluate((el) => el.getBoundingClientRect().left)
  for (const i of [2, 4, 10])
    assert.equal(
      await left(plain, served.at(-1), i),
      await left(plain, served[0], i),
      `column ${i}, no script`,
    )
  // no control that needs the script (they come with it, after the first paint), and their room
  // kept: the page below them sits where it will with them
  assert.equal(await plain.locator('input, dialog, button').count(), 0, 'no control without scripts')
  const top = (p, selector) => p.locator(selector).evaluate((el) => el.getBoundingClientRect().top)
  assert.equal(
    await top(plain, '#graph'),
    await top(page, '#graph'),
    'the graph where it is with the controls',
  )
  // and the rows on the first screen where they are with their buttons (the actions cell keeps
  // their height)
  const fourth = `tr[data-module="${served[3]}"]`
  assert.equal(
    await top(plain, fourth),
    await top(page, fourth),
    'the rows where they are with their buttons',
  )
  for (const name of served) assert.equal(await genOf(plain, name), '1', `generation of ${name}, no script`)

  // a completed row acts like the others
  const last = page.locator(`tr[data-module="${served.at(-1)}"]`)
  await last.getByRole('button', { name: 'Reload', exact: true }).click()
  await page.locator('#notice', { hasText: `${served.at(-1)}: unchanged` }).waitFor()
})

test('with an admin token the page comes without modules', async (t) => {
  const { root } = await exampleRoot(t, 'admin.token=s3cret\n')
  const host = await startHost(t, root)
  const page = await request(host.admin('/'))
  assert.equal(page.status, 200)
  assert.doesNotMatch(page.text, /data-module=|data-node=|hello/)
  assert.match(page.text, /data-view="empty"/)
})

test('between its full updates the page asks for the figures alone: requests to a module show in its row', async (t) => {
  const { root } = await exampleRoot(t)
  const host = await startHost(t, root)
  const browser = await browserFor(t)
  const page = await openPage(t, browser, host.admin('/'))
  await page.waitForSelector('html[data-ready]')
  const rate = () => page.locator('tr[data-module="hello"] td').nth(5).textContent()
  assert.equal(Number.parseFloat(await rate()), 0)
  // no full update from now on: what the row shows next can only come from GET /stats
  const asked = []
  await page.route('**/overview*', (route) => {
    asked.push('/overview')
    return route.abort()
  })
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/stats') asked.push('/stats')
  })
  // requests over more than a second: the rate counts full seconds only
  for (let i = 0; i < 15; i++) {
    assert.equal((await request(host.url('/hello/'))).status, 200)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await page.waitForFunction(
    () => Number.parseFloat(document.querySelectorAll('tr[data-module="hello"] td')[5]?.textContent) > 0,
    null,
    { timeout: 30_000 },
  )
  assert.ok(asked.includes('/stats'), `the page asked for ${asked.join(', ') || 'nothing'}`)
})

test('a burst of reload events makes at most one update request at a time, applied in order', async (t) => {
  const { root } = await exampleRoot(t)
  const host = await startHost(t, root)
  const browser = await browserFor(t)
  const page = await openPage(t, browser, host.admin('/'))
  await page.waitForSelector('html[data-ready]')
  // each update is held back 300 ms on its way, so that the reload's events arrive while one is out
  let inFlight = 0
  let most = 0
  let asked = 0
  await page.route('**/overview*', async (route) => {
    asked++
    inFlight++
    most = Math.max(most, inFlight)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await route.continue()
  })
  page.on('requestfinished', (r) => {
    if (new URL(r.url()).pathname === '/overview') inFlight--
  })
  const events = await page.locator('#events li').count()
  // core and its dependents: several events (started, swapped, drained for each)
  const reload = await request(host.admin('/modules/core/reload?force=true'), { method: 'POST' })
  assert.equal(reload.status, 200)
  await waitGeneration(page, 'core', 2)
  await waitGeneration(page, 'billing', 2)
  await page.waitForFunction(
    (n) => [...document.querySelectorAll('#events li')].filter((li) => li.className !== 'start').length >= n,
    events + 3,
  )
  const burst = (await page.locator('#events li').count()) - events
  assert.ok(burst >= 4, `the forced reload sent ${burst} events`)
  assert.equal(most, 1, 'never two update requests at once')
  assert.ok(asked < burst, `${asked} update requests for ${burst} events`)
  // the last answer applied is the newest: the page ends at what the host serves
  const served = (await request(host.admin('/modules'))).body.modules
  await page.waitForFunction(() => !document.querySelector('.node.reloading'))
  for (const m of served)
    assert.equal(await genOf(page, m.name), m.generation === null ? '' : String(m.generation), m.name)
})

test('a rescan that starts on every module and swaps one leaves none of the others reloading', async (t) => {
  // bundles changed in place, no watcher: `POST /reload` reads every bundle (its start names them
  // all) and swaps only the one that changed (its end names that one and its dependents)
  const { root } = await exampleRoot(t, 'auto.reload.modules=false\nauto.reload.monitoring.type=default\n')
  const host = await startHost(t, root)
  const browser = await browserFor(t)
  const page = await openPage(t, browser, host.admin('/'))
  await page.waitForSelector('html[data-ready]')
  await page.waitForFunction(() => document.getElementById('live').dataset.live === 'open')
  const v2 = await moduleSource(root, 'quotes-v2', { fields: { version: '2.0.0' } })
  await packWithNyala(v2, path.join(modulesOf(root), 'quotes.zip'))
  const reload = await request(host.admin('/reload'), { method: 'POST' })
  assert.equal(reload.status, 200, JSON.stringify(reload.body))
  const events = (await request(host.admin('/events/recent'))).body.events
  const start = events.find((e) => e.phase === 'start' && e.id === reload.body.id)
  const swapped = events.find((e) => e.phase === 'swapped' && e.id === reload.body.id)
  assert.ok(start && swapped, `the rescan's events: ${JSON.stringify(events)}`)
  assert.ok(
    start.modules.length > swapped.modules.length,
    `the start names more modules (${start.modules}) than the swap (${swapped.modules})`,
  )
  await waitGeneration(page, 'quotes', 2)
  await page.locator('#events li.swapped').first().waitFor()
  // what the host says each module is, and nothing left "reloading" in the table or the graph
  const served = (await request(host.admin('/modules'))).body.modules
  await page.waitForFunction(
    (n) => document.querySelectorAll('tbody .state:not(.reloading)').length === n,
    served.length,
  )
  assert.equal(await page.locator('#graph .node.reloading').count(), 0, 'no node left reloading')
  for (const m of served)
    assert.match(
      await page.locator(`tr[data-module="${m.name}"] .state`).textContent(),
      new RegExp(m.state),
      m.name,
    )
})

test('console tabs in the background let go of the host: a seventh tab loads, a tab shown again is live', async (t) => {
  const { root } = await exampleRoot(t)
  const host = await startHost(t, root)
  const browser = await browserFor(t)
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } })
  t.after(() => context.close())
  const live = (page) => page.evaluate(() => document.getElementById('live').dataset.live)
  // a browser gives a host six connections (HTTP/1.1), and a tab following the events holds one
  const tabs = []
  for (let i = 0; i < 6; i++) {
    const page = await context.newPage()
    await page.goto(host.admin('/'))
    await page.waitForFunction(() => document.getElementById('live').dataset.live === 'open')
    tabs.push(page)
  }
  // headless Chromium shows every tab: five are said hidden as a browser says it of a tab in the
  // background (document.hidden, visibilityState and the visibilitychange event)
  const setHidden = (page, hidden) =>
    page.evaluate((h) => {
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h })
      Object.defineProperty(document, 'visibilityState', {
        configurable: true,
        get: () => (h ? 'hidden' : 'visible'),
      })
      document.dispatchEvent(new Event('visibilitychange'))
    }, hidden)
  for (const page of tabs.slice(0, 5)) {
    await setHidden(page, true)
    await page.waitForFunction(() => document.getElementById('live').dataset.live === 'paused')
  }
  const seventh = await context.newPage()
  await seventh.goto(host.admin('/'), { timeout: 20_000 })
  await seventh.waitForSelector('html[data-ready]', { timeout: 20_000 })
  await seventh.waitForFunction(() => document.getElementById('live').dataset.live === 'open')
  // a reload while the first tab is hidden: shown again, it follows the events and shows the reload
  const reload = await request(host.admin('/modules/hello/reload?force=true'), { method: 'POST' })
  assert.equal(reload.status, 200)
  await setHidden(tabs[0], false)
  await tabs[0].waitForFunction(() => document.getElementById('live').dataset.live === 'open')
  await waitGeneration(tabs[0], 'hello', 2)
  await tabs[0].locator('#events li.swapped').first().waitFor()
  assert.equal(await live(tabs[1]), 'paused')
})
