// log.format / --log-format against the real CLI: JSON lines when stdout is piped, readable
// lines with `pretty` or on a real pseudo-terminal (util-linux `script`), JSON in the log file
// of a daemon. Every process a test starts is stopped by pid before it ends.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import test from 'node:test'
import {
  cliPath,
  daemonLogs,
  deploy,
  isAlive,
  killAfter,
  makeRoot,
  packWithZip,
  parseLogs,
  runCli,
  startDaemon,
  waitUntil,
} from './helpers.js'

// colours are decided from the terminal alone in these tests (children inherit this environment)
delete process.env.NO_COLOR
delete process.env.FORCE_COLOR

const config = 'port=0\nhost=127.0.0.1\nshutdown.grace.period=10\n'
const pidfileOf = (root) => path.join(root, 'run', 'nyala.pid')

/** The `script` of util-linux (runs a command on a new pseudo-terminal), or why not. */
function scriptCommand() {
  try {
    const version = execFileSync('script', ['--version'], { encoding: 'utf8' })
    return /util-linux/.test(version)
      ? { ok: true }
      : { ok: false, why: `script is not util-linux's: ${version}` }
  } catch (err) {
    return { ok: false, why: `no util-linux script command (${err.code ?? err.message})` }
  }
}
const script = scriptCommand()

/** A shell word for `script -c`. */
const quote = (s) => `'${s.replaceAll("'", `'\\''`)}'`

/**
 * Spawns `command args` with stdout piped, waits until its output contains `until`,
 * then stops the host whose pid the root's pidfile names with SIGTERM and waits for
 * `command` to exit. Resolves { code, stdout, stderr }; kills what is left on failure.
 */
async function runUntil(t, root, command, args, until, env = process.env) {
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  t.after(() => {
    // the host first: under `script` it runs in a session of its own
    readFile(pidfileOf(root), 'utf8')
      .then((text) => {
        const pid = Number(text.trim())
        if (pid > 0 && isAlive(pid)) process.kill(pid, 'SIGKILL')
      })
      .catch(() => {})
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid, 'SIGKILL')
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  await waitUntil(
    () => stdout.includes(until) || child.exitCode !== null,
    `"${until}" in the output of ${command} ${args.join(' ')}`,
    60_000,
  )
  if (child.exitCode === null) {
    // the pidfile is written just after the host logs that it listens: wait for it
    let pid = 0
    await waitUntil(
      async () => {
        pid = Number((await readFile(pidfileOf(root), 'utf8').catch(() => '')).trim())
        return pid > 0
      },
      `the pidfile of ${root}`,
      30_000,
    )
    process.kill(pid, 'SIGTERM')
  }
  const code = await exited
  return { code, stdout, stderr }
}

/** `nyala start` on `root` with stdout piped, stopped once it listens. */
const startPiped = (t, root, args = []) =>
  runUntil(t, root, process.execPath, [cliPath, 'start', '--root', root, ...args], 'listening on')

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour escapes
const uncoloured = (text) => text.replace(/\u001b\[[0-9;]*m/g, '')

/** Asserts readable (non-JSON) lines naming the started module, and the stop at the end. */
function assertPretty(output) {
  const stdout = uncoloured(output)
  const lines = stdout.split(/\r?\n/).filter((l) => l.trim() !== '')
  assert.ok(lines.length >= 3, stdout)
  for (const line of lines) assert.throws(() => JSON.parse(line), undefined, `a JSON line: ${line}`)
  // time, level, the module and generation, the message, its fields
  assert.match(
    stdout,
    /\[\d\d:\d\d:\d\d\.\d{3}\] .*INFO.*: .*\[hello g1\].* module hello 1\.0\.0 started \(generation 1\).*ms=/,
  )
  assert.match(stdout, /listening on http:\/\/127\.0\.0\.1:\d+/)
  // written synchronously: the last record is there, after the module stops
  assert.match(stdout, /module hello stopped[\s\S]*INFO.*: .*stopped\s*$/)
}

test('piped, the host logs JSON lines (log.format=auto)', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const res = await startPiped(t, root)
  assert.equal(res.code, 0, res.stderr)
  const lines = res.stdout.split('\n').filter(Boolean)
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`)
  const started = parseLogs(res.stdout).find((r) => r.module === 'hello' && /started/.test(r.msg))
  assert.equal(started?.generation, 1)
  assert.equal(parseLogs(res.stdout).at(-1)?.msg, 'stopped')
})

test('--log-format pretty prints readable lines; json keeps JSON', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const pretty = await startPiped(t, root, ['--log-format', 'pretty'])
  assert.equal(pretty.code, 0, pretty.stderr)
  assertPretty(pretty.stdout)
  // the flag wins over the file
  await writeFile(
    path.join(root, 'config', 'impala.properties'),
    `admin.port=0\n${config}log.format=pretty\n`,
  )
  const json = await startPiped(t, root, ['--log-format', 'json'])
  assert.equal(json.code, 0, json.stderr)
  assert.ok(parseLogs(json.stdout).some((r) => r.module === 'hello' && r.generation === 1))
  assert.equal(json.stdout.split('\n').filter(Boolean).length, parseLogs(json.stdout).length)
})

test('log.format=pretty in the configuration file prints readable lines', async (t) => {
  const root = await makeRoot(t, `${config}log.format=pretty\n`)
  await deploy(root, 'hello')
  const res = await startPiped(t, root)
  assert.equal(res.code, 0, res.stderr)
  assertPretty(res.stdout)
})

test('pretty error records show their code and module', async (t) => {
  const root = await makeRoot(t, `${config}log.format=pretty\n`)
  await deploy(root, 'hello')
  await deploy(root, 'broken', { files: { 'index.js': 'module.exports = {\n' }, pack: packWithZip })
  const res = await startPiped(t, root)
  assert.equal(res.code, 0, res.stderr)
  assert.match(res.stdout, /ERROR.*: .*\[broken\].* NYALA_ERR_MODULE_SYNTAX: .*broken\.zip/)
})

test('one pino instance either way; pino-pretty is loaded only for pretty lines', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const probe = path.join(path.dirname(cliPath), '..', 'test', 'pino-probe.cjs')
  for (const [format, pretty] of [
    ['json', false],
    ['pretty', true],
  ]) {
    const args = ['--require', probe, cliPath, 'start', '--root', root, '--log-format', format]
    const res = await runUntil(t, root, process.execPath, args, 'listening on')
    assert.equal(res.code, 0, res.stderr)
    // a second instance on stdout costs every request (see src/cli/start.ts)
    assert.match(res.stderr, new RegExp(`pino-probe: instances=1 pino-pretty=${pretty}\\n`))
  }
})

test('a bad log.format or --log-format exits 1 naming the key, the value and what is expected', async (t) => {
  const root = await makeRoot(t, config)
  const flag = await runCli(['start', '--root', root, '--log-format', 'fancy'], { cwd: root })
  assert.equal(flag.code, 1)
  assert.match(
    flag.stderr,
    /NYALA_ERR_CONFIG_VALUE: command line: key "--log-format" has value "fancy", expected one of auto, json, pretty/,
  )
  // piped, the fatal record is JSON too
  assert.equal(parseLogs(flag.stdout).at(-1)?.code, 'NYALA_ERR_CONFIG_VALUE')

  const upgrade = await runCli(['upgrade', '--root', root, '--log-format', 'fancy'], { cwd: root })
  assert.equal(upgrade.code, 1)
  assert.match(upgrade.stderr, /NYALA_ERR_CONFIG_VALUE: command line: key "--log-format" has value "fancy"/)

  await writeFile(
    path.join(root, 'config', 'impala.properties'),
    `admin.port=0\n${config}log.format=Pretty\n`,
  )
  const file = await runCli(['start', '--root', root], { cwd: root })
  assert.equal(file.code, 1)
  assert.match(
    file.stderr,
    /NYALA_ERR_CONFIG_VALUE: .*impala\.properties: key "log\.format" has value "Pretty"/,
  )
})

test('on a terminal (a real pseudo-terminal), auto prints readable lines', {
  skip: !script.ok && script.why,
}, async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const command = [process.execPath, cliPath, 'start', '--root', root].map(quote).join(' ')
  const env = { ...process.env, TERM: 'xterm' }
  const res = await runUntil(t, root, 'script', ['-qfec', command, '/dev/null'], 'listening on', env)
  assert.equal(res.code, 0, res.stderr)
  assert.notEqual(uncoloured(res.stdout), res.stdout, 'no colours on a terminal')
  assertPretty(res.stdout)
})

test('a daemon started from a terminal logs JSON into log.file under auto', {
  skip: !script.ok && script.why,
}, async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const command = [process.execPath, cliPath, 'start', '--root', root, '--daemonize'].map(quote).join(' ')
  const out = execFileSync('script', ['-qfec', command, '/dev/null'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 90_000,
  })
  const m = /pid (\d+) serving/.exec(out)
  assert.ok(m, out)
  const pid = Number(m[1])
  killAfter(t, pid)
  process.kill(pid, 'SIGTERM')
  await waitUntil(() => !isAlive(pid), 'the daemon to stop')
  const text = await readFile(path.join(root, 'nyala.log'), 'utf8')
  const lines = text.split('\n').filter(Boolean)
  assert.ok(lines.length > 3, text)
  for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `not JSON: ${line}`)
})

test('nyala upgrade passes --log-format on to the successor', async (t) => {
  const root = await makeRoot(t, config)
  await deploy(root, 'hello')
  const first = await startDaemon(t, root)
  const res = await runCli(['upgrade', '--root', root, '--log-format', 'pretty'], {
    cwd: root,
    timeoutMs: 120_000,
  })
  const m = /pid (\d+) serves/.exec(res.stdout)
  if (m) killAfter(t, Number(m[1]))
  assert.equal(res.code, 0, `${res.stdout}\n${res.stderr}`)
  const successor = Number(m[1])
  await waitUntil(() => !isAlive(first.pid), 'the old instance to exit')
  process.kill(successor, 'SIGTERM')
  await waitUntil(() => !isAlive(successor), 'the successor to stop')
  const text = await readFile(path.join(root, 'nyala.log'), 'utf8')
  // the old instance's records are JSON, the successor's readable lines
  assert.ok((await daemonLogs(root)).some((r) => r.pid === first.pid && /^listening/.test(r.msg)))
  assert.match(text, /\n\[\d\d:\d\d:\d\d\.\d{3}\] INFO: \[hello g1\] module hello 1\.0\.0 started/)
  assert.match(text, /INFO: took over the listeners of pid \d+/)
})
