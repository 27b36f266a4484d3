// The bare server of bench/cluster-balance.js and bench/cluster.js: every answer is the pid of
// the process that served it, so a client can tell workers apart. Run three ways:
//
//   node bench/cluster-app.js --workers N --policy rr|shared --app http|fastify [--port P]
//     a Node cluster primary forking N workers (port 0: the primary picks one port for all);
//   under pm2's cluster mode (pm2 sets pm_id and runs this file in each worker it forks):
//     only the worker, with APP and PORT from the environment.
//
// Each worker counts the connections it accepted and the requests it served; SIGUSR2 to the
// primary prints one JSON line { msg: 'stats', workers: [{ pid, connections, requests, cpu }] },
// cumulative since the start, so a bench takes two snapshots and subtracts.
import cluster from 'node:cluster'
import http from 'node:http'
import { parseArgs } from 'node:util'

const underPm2 = process.env.pm_id !== undefined

if (cluster.isPrimary && !underPm2) await primary()
else await worker(process.env.APP ?? 'http', Number(process.env.PORT ?? 0))

async function primary() {
  const { values } = parseArgs({
    options: {
      workers: { type: 'string', default: '2' },
      policy: { type: 'string', default: 'rr' },
      app: { type: 'string', default: 'http' },
      port: { type: 'string', default: '0' },
    },
  })
  const count = Number(values.workers)
  // must be set before the first fork: the primary reads it once
  cluster.schedulingPolicy = values.policy === 'shared' ? cluster.SCHED_NONE : cluster.SCHED_RR
  const env = { APP: values.app, PORT: values.port }
  const workers = Array.from({ length: count }, () => cluster.fork(env))
  let port
  await Promise.all(
    workers.map(
      (w) =>
        new Promise((resolve, reject) => {
          w.once('listening', (address) => {
            port = address.port
            resolve()
          })
          w.once('exit', (code) => reject(new Error(`worker ${w.process.pid} exited (${code}) before listening`)))
        }),
    ),
  )
  console.log(
    JSON.stringify({
      msg: `listening on http://127.0.0.1:${port}`,
      port,
      policy: values.policy,
      app: values.app,
      workers: workers.map((w) => w.process.pid),
    }),
  )

  process.on('SIGUSR2', async () => {
    const stats = await Promise.all(
      workers.map(
        (w) =>
          new Promise((resolve) => {
            const timer = setTimeout(() => resolve({ pid: w.process.pid, missing: true }), 2000)
            w.once('message', (m) => {
              clearTimeout(timer)
              resolve(m)
            })
            w.send('stats')
          }),
      ),
    )
    console.log(JSON.stringify({ msg: 'stats', primaryCpu: process.cpuUsage(), workers: stats }))
  })
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      setTimeout(() => process.exit(1), 3000).unref()
      for (const w of workers) w.kill('SIGTERM')
      Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve)))).then(() =>
        process.exit(0),
      )
    })
  }
}

async function worker(app, port) {
  let connections = 0
  let requests = 0
  const pid = String(process.pid)
  let server
  if (app === 'fastify') {
    const { default: Fastify } = await import('fastify')
    const fastify = Fastify()
    fastify.get('/', async () => {
      requests++
      return pid
    })
    await fastify.ready()
    server = fastify.server
  } else {
    server = http.createServer((_req, res) => {
      requests++
      res.end(pid)
    })
  }
  server.on('connection', () => {
    connections++
  })
  server.listen(port, '127.0.0.1')
  process.on('message', (m) => {
    if (m === 'stats') process.send({ pid: process.pid, connections, requests, cpu: process.cpuUsage() })
  })
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      setTimeout(() => process.exit(1), 3000).unref()
      server.close(() => process.exit(0))
      server.closeIdleConnections?.()
    })
  }
}
