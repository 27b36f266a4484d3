// The bare server of bench/cluster-balance.js and bench/cluster.js: every answer is the pid of
// the process that served it, so a client can tell workers apart. Run three ways:
//
//   node bench/cluster-app.js --workers N --policy rr|shared|least --app http|fastify [--port P]
//     a Node cluster primary forking N workers (port 0: the primary picks one port for all);
//     with `least`, the primary accepts itself and hands each connection over IPC to the worker
//     with the fewest open connections (what a supervisor owning the listener can do instead
//     of Node's round-robin, which hands it to whichever worker acknowledged its last one first);
//   under pm2's cluster mode (pm2 sets pm_id and runs this file in each worker it forks):
//     only the worker, with APP and PORT from the environment.
//
// Each worker counts the connections it accepted and the requests it served; SIGUSR2 to the
// primary prints one JSON line { msg: 'stats', workers: [{ pid, connections, requests, cpu }] },
// cumulative since the start, so a bench takes two snapshots and subtracts.
import cluster from 'node:cluster'
import http from 'node:http'
import net from 'node:net'
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
  const least = values.policy === 'least'
  // must be set before the first fork: the primary reads it once
  cluster.schedulingPolicy = values.policy === 'shared' ? cluster.SCHED_NONE : cluster.SCHED_RR
  const env = { APP: values.app, PORT: values.port, HANDOFF: least ? '1' : '' }
  const workers = Array.from({ length: count }, () => cluster.fork(env))
  const open = new Map(workers.map((w) => [w, 0]))
  for (const w of workers) {
    w.on('message', (m) => {
      if (m?.type === 'closed') open.set(w, open.get(w) - 1)
    })
  }
  let port
  await Promise.all(
    workers.map(
      (w) =>
        new Promise((resolve, reject) => {
          // a handoff worker does not listen: it says it is ready
          const ready = (address) => {
            if (address?.port) port = address.port
            resolve()
          }
          if (least) w.on('message', (m) => m?.type === 'ready' && ready())
          else w.once('listening', ready)
          w.once('exit', (code) =>
            reject(new Error(`worker ${w.process.pid} exited (${code}) before listening`)),
          )
        }),
    ),
  )
  if (least) {
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      let target = workers[0]
      for (const w of workers) if (open.get(w) < open.get(target)) target = w
      open.set(target, open.get(target) + 1)
      target.send({ type: 'conn' }, socket)
    })
    await new Promise((resolve) => server.listen(Number(values.port), '127.0.0.1', resolve))
    port = server.address().port
  }
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
            const onMessage = (m) => {
              if (m?.type !== 'stats') return
              clearTimeout(timer)
              w.off('message', onMessage)
              resolve(m)
            }
            w.on('message', onMessage)
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
  if (process.env.HANDOFF) {
    process.on('message', (m, socket) => {
      if (m?.type !== 'conn' || !socket) return
      socket.once('close', () => process.send({ type: 'closed' }))
      server.emit('connection', socket)
      socket.resume()
    })
    process.send({ type: 'ready' })
  } else server.listen(port, '127.0.0.1')
  process.on('message', (m) => {
    if (m === 'stats') {
      process.send({ type: 'stats', pid: process.pid, connections, requests, cpu: process.cpuUsage() })
    }
  })
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      setTimeout(() => process.exit(1), 3000).unref()
      server.close(() => process.exit(0))
      server.closeIdleConnections?.()
    })
  }
}
