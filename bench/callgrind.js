#!/usr/bin/env node
// Instructions per request of a server, under valgrind's callgrind: the steady figure behind
// bench/dispatch-gap.md (wall-clock ratios on 2 shared cores move by several percent from run to
// run; instruction counts repeat within ~0.5 %). A diagnostic tool, not part of `npm run bench`:
// it needs valgrind (`apt-get install valgrind`) and takes a minute or two per server.
import { execFileSync, spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { eachLine, packageUrl } from './common.js'

const usage = `Usage: node bench/callgrind.js [options] [-- <node arguments of the server>]

Starts the server under callgrind, waits for its "listening" log line, loads one route on one
connection (a warm-up, then rounds) and prints the user-space instructions per request of each
round. The last round is the figure: counts still fall a little while V8 keeps optimizing, so
only runs with the same schedule compare.

  node bench/callgrind.js --bare
      a one-route bare Fastify app (the dispatch benchmark's baseline), route /hello/hello
  node bench/callgrind.js --path /hello/hello -- dist/cli.js start --root DIR --port 0
      Nyala serving module "hello" (prefix /hello) from DIR
  node bench/callgrind.js --bare-inside -- dist/cli.js start --root DIR --port 0
      the bare app served from inside that Nyala process (preloaded), to see what the process
      alone costs

Options:
  --path P         route to load (default /hello/hello)
  --warmup N       warm-up requests before counting (default 8000)
  --rounds N       counted rounds (default 4)
  --requests N     requests per round (default 3000)
  --bare           run the built-in bare Fastify app
  --bare-inside    also start the bare app inside the server process and load that one
  -h, --help       this text`

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    path: { type: 'string', default: '/hello/hello' },
    warmup: { type: 'string', default: '8000' },
    rounds: { type: 'string', default: '4' },
    requests: { type: 'string', default: '3000' },
    bare: { type: 'boolean', default: false },
    'bare-inside': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (values.help || (!values.bare && positionals.length === 0)) {
  console.log(usage)
  process.exit(values.help ? 0 : 2)
}
const count = (name) => {
  const n = Number(values[name])
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} ${values[name]}: expected a whole number >= 1`)
  return n
}
const [warmup, rounds, requests] = [count('warmup'), count('rounds'), count('requests')]
try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' })
} catch {
  console.error('bench/callgrind.js: valgrind is not installed (apt-get install valgrind)')
  process.exit(2)
}

const work = await mkdtemp(path.join(os.tmpdir(), 'nyala-callgrind-'))
// the bare app as a script, or as a preload that starts it on SIGUSR2: after the host is up, so
// that the host's own start-up (src/http/tick-shape.ts must run first) is as in production
const fastifyUrl = packageUrl('fastify')
const bareApp = `import Fastify from ${JSON.stringify(fastifyUrl)}
const app = Fastify()
app.get('/hello/hello', async () => ({ hello: 'world' }))
await app.listen({ host: '127.0.0.1', port: 0 })
console.log(JSON.stringify({ msg: process.env.BENCH_BARE_INSIDE ? 'listening (bare inside)' : 'listening', port: app.server.address().port }))
`
const bareScript = path.join(work, 'bare.mjs')
await writeFile(bareScript, bareApp)
const preload = path.join(work, 'bare-inside.mjs')
await writeFile(
  preload,
  `process.once('SIGUSR2', () => import(${JSON.stringify(pathToFileURL(bareScript).href)}))\n`,
)

const nodeArgs = values.bare
  ? [bareScript]
  : values['bare-inside']
    ? ['--import', preload, ...positionals]
    : positionals
const inside = values['bare-inside']
const outFile = path.join(work, 'callgrind.out')
const child = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    '--smc-check=all-non-file',
    `--callgrind-out-file=${outFile}`,
    process.execPath,
    ...nodeArgs,
  ],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, BENCH_BARE_INSIDE: inside ? '1' : '' } },
)
try {
  const port = await new Promise((resolve, reject) => {
    eachLine(child.stdout, (line) => {
      let record
      try {
        record = JSON.parse(line)
      } catch {
        return
      }
      if (typeof record.port !== 'number') return
      if (record.msg === 'listening (bare inside)') resolve(record.port)
      else if (/^listening/.test(record.msg ?? '')) {
        if (inside) child.kill('SIGUSR2')
        else resolve(record.port)
      }
    })
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening`)))
  })
  const url = `http://127.0.0.1:${port}${values.path}`
  const load = (amount) =>
    new Promise((resolve, reject) =>
      autocannon({ url, connections: 1, amount }, (err, result) => {
        if (err) reject(err)
        else if (result.non2xx > 0 || result.errors > 0)
          reject(new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`))
        else resolve(result)
      }),
    )
  console.error(`callgrind: warm-up, ${warmup} requests to ${url}`)
  await load(warmup)
  execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' })
  for (let i = 0; i < rounds; i++) {
    await load(requests)
    execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' })
  }
  const dumps = (await readdir(work))
    .filter((f) => f.startsWith('callgrind.out.'))
    .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()))
  const perRequest = []
  for (const f of dumps) {
    const total = /^(?:totals|summary): (\d+)/m.exec(await readFile(path.join(work, f), 'utf8'))
    if (total) perRequest.push(Math.round(Number(total[1]) / requests))
  }
  console.log(`instructions per request, rounds 1..${perRequest.length}: ${perRequest.join(' ')}`)
} finally {
  child.kill('SIGKILL')
  await rm(work, { recursive: true, force: true })
}
