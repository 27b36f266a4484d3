import { workerSlotOf } from '../cluster/protocol.js'
import { WorkerPool } from '../cluster/worker-pool.js'
import { runWorker } from '../cluster/worker-process.js'
import type { WorkerCommand } from '../cluster/worker-slot.js'
import type { HostFlags, HostOptions, LogFormatSetting } from '../config/host-options.js'
import { loadHostOptions } from '../config/host-options.js'
import { type ConfigKey, keySpecs } from '../config/keys.js'
import { isNyalaError, reasonOf } from '../errors.js'
import { NyalaHost } from '../host.js'
import { createLogger, type Logger, resolveLogFormat } from '../logger.js'
import { startWatchdog } from '../supervise/watchdog.js'
import { daemonize } from '../upgrade/daemonize.js'
import { addonFile } from '../upgrade/native.js'
import { runProcess } from '../upgrade/process-lifecycle.js'
import { Readiness } from '../upgrade/readiness.js'
import { exitCodes, parse, reportFatal, UsageError } from './common.js'

const startHelp = `Usage: nyala start [options]

Loads every bundle (*.zip, *.jar, directories) in the modules directory, starts
the modules in dependency order and serves them on one HTTP listener.
Logs go to stdout: readable lines on a terminal, pino JSON lines otherwise.

Options:
  --root DIR       root directory; relative paths resolve from it
                   (default: .)
  --config FILE    configuration file
                   (default: <root>/config/impala.properties)
  --port N         listen port, 0 for any free port (key: port, default 8080;
                   the environment variable NYALA_PORT when the flag is absent)
  --host H         listen address (key: host, default 127.0.0.1)
  --watch          watch the modules and hot-reload changed bundles
                   (sets auto.reload.modules=true)
  --admin-port N   admin API port, 0 for any free port (key: admin.port,
                   default 8081)
  --log-level L    fatal|error|warn|info|debug|trace|silent (key: log.level)
  --log-format F   auto|json|pretty (key: log.format, default auto: pretty when
                   stdout is a terminal, JSON lines otherwise)
  --workers N      worker processes: 1 serves from this process; more (or auto:
                   one per core) makes this process a supervisor that owns the
                   listeners, the watcher and the admin API, and forks N
                   workers that each load every module (key: workers, default 1)
  --daemonize      run in the background: logs appended to log.file (default
                   nyala.log), returns once the instance serves
  --pidfile FILE   pidfile, written once serving (key: pid.file,
                   default run/nyala.pid)
  --upgrade-socket FILE
                   Unix socket of the process upgrade (key: upgrade.socket,
                   default run/upgrade.sock)
  --upgrade        start as the successor of the running instance: load every
                   module, then wait on the upgrade socket for its listeners
                   (send it SIGQUIT, or use "nyala upgrade")
  -h, --help       show this help

Signals: SIGQUIT hands the listeners to a successor waiting on the upgrade
socket, then drains and exits (without one, keeps serving); SIGTERM stops
gracefully (drains up to shutdown.grace.period); SIGINT stops fast
(shutdown.fast.timeout); SIGHUP rescans the modules and reloads what changed
(as the admin API's POST /reload). A pidfile naming a running process refuses
the start. An uncaught error outside every module (the host's own) starts a
successor with these arguments and --upgrade, hands it the listeners and exits
0 (host.crash.action=upgrade), or exits 1 (host.crash.action=exit, or when no
successor takes over).

A watchdog thread logs NYALA_ERR_EVENT_LOOP_STALL with the module and route
running when the event loop has not turned for watchdog.stall.ms (default 2000,
0: off); with watchdog.action=exit the process then exits with code 3.`

const flagKeys: Record<string, ConfigKey> = {
  port: 'port',
  host: 'host',
  'admin-port': 'admin.port',
  'log-level': 'log.level',
  'log-format': 'log.format',
  pidfile: 'pid.file',
  'upgrade-socket': 'upgrade.socket',
  workers: 'workers',
}

export async function start(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    config: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    'admin-port': { type: 'string' },
    watch: { type: 'boolean' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    pidfile: { type: 'string' },
    'upgrade-socket': { type: 'string' },
    workers: { type: 'string' },
    daemonize: { type: 'boolean' },
    upgrade: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${startHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length > 0) throw new UsageError(`start takes no arguments, got "${positionals.join(' ')}"`)
  const flags: HostFlags = {
    root: values.root as string | undefined,
    config: values.config as string | undefined,
    set: {},
    flagNames: {},
  }
  for (const [flag, key] of Object.entries(flagKeys)) {
    const value = values[flag]
    if (typeof value === 'string') {
      flags.set![key] = value
      flags.flagNames![key] = `--${flag}`
    }
  }
  if (values.watch) {
    flags.set!['auto.reload.modules'] = 'true'
    flags.flagNames!['auto.reload.modules'] = '--watch'
  }
  // an environment override for `npm start`, below the flag
  if (process.env.NYALA_PORT && !flags.set!.port) {
    flags.set!.port = process.env.NYALA_PORT
    flags.flagNames!.port = 'NYALA_PORT'
  }

  let loaded: ReturnType<typeof loadHostOptions>
  try {
    loaded = loadHostOptions(flags)
  } catch (err) {
    // a parent waiting for this process (--daemonize, nyala upgrade, a crashed host's
    // replacement) learns the reason, not only an exit code
    new Readiness().report({
      state: 'failed',
      pid: process.pid,
      code: isNyalaError(err) ? err.code : 'ERROR',
      message: reasonOf(err),
    })
    // Only here, without options, a logger at the default level reports the error. One
    // logger per process: a second pino instance on stdout measured ~15 us more CPU per
    // request for the life of the process (bench/dispatch.js; cause inside pino not found).
    return reportFatal(createLogger('info', fallbackFormat(values['log-format'])), err)
  }
  const { options, warnings } = loaded
  // the daemon decides its format itself: under auto, JSON, since its stdout is log.file
  if (values.daemonize) return startDaemon(args, options.process.logFile)
  const worker = workerSlotOf(process.env)
  const root = createLogger(options.logLevel, options.logFormat)
  // a worker's records carry its slot; the supervisor already said what the configuration said
  const log = worker === undefined ? root : root.child({ worker })
  if (worker === undefined) for (const w of warnings) log.warn(w.toJSON(), w.message)
  if (!loaded.configFound && worker === undefined)
    log.info({ file: options.configFile }, `no ${options.configFile}: using defaults`)
  // a crashed host starts its successor as this process was started (host.crash.action=upgrade)
  const successor = {
    cli: process.argv[1]!,
    args: args.filter((a) => a !== '--upgrade' && a !== '--daemonize'),
  }
  const watchdog = startWatchdog(
    {
      ...options.watchdog,
      format: resolveLogFormat(options.logFormat),
      exitCode: exitCodes.stalled,
      addonFile,
    },
    log,
  )
  try {
    if (worker !== undefined) return await runWorker(options, log, worker)
    const host =
      options.cluster.workers > 1
        ? supervisorHost(options, log, { cli: successor.cli, args: ['start', ...successor.args] })
        : new NyalaHost(options, log)
    const onHangup = () => {
      log.info({ signal: 'SIGHUP' }, 'SIGHUP: rescanning modules')
      host.reloader.rescan('SIGHUP').catch((err: unknown) => reportFatal(log, err))
    }
    return await runProcess(host, log, { upgrade: values.upgrade === true, onHangup, successor })
  } finally {
    await watchdog.stop()
  }
}

/** A host whose modules run in `options.cluster.workers` worker processes (src/cluster/). */
function supervisorHost(options: HostOptions, log: Logger, command: WorkerCommand): NyalaHost {
  const host = new NyalaHost(options, log, { role: 'supervisor' })
  const pool = new WorkerPool(options, log, command)
  host.useWorkers(pool, pool.dispatch)
  return host
}

/** Without options (they failed to load): the flag's format if it is a valid one, else auto. */
function fallbackFormat(flag: unknown): LogFormatSetting {
  const parsed = typeof flag === 'string' ? keySpecs['log.format'].parse(flag) : undefined
  return parsed?.ok ? parsed.value : 'auto'
}

/** `--daemonize`: the same command in the background; this process reports and exits. */
async function startDaemon(args: string[], logFile: string): Promise<number> {
  const rest = args.filter((a) => a !== '--daemonize')
  const { pid, report } = await daemonize(process.argv[1]!, rest, logFile)
  process.stdout.write(
    report.state === 'serving'
      ? `nyala: pid ${pid} serving on ${report.url} (log: ${logFile})\n`
      : `nyala: pid ${pid} waiting for the handover on ${report.socket} (log: ${logFile})\n`,
  )
  return exitCodes.ok
}
