import type { HostFlags } from '../config/host-options.js'
import { loadHostOptions } from '../config/host-options.js'
import type { ConfigKey } from '../config/keys.js'
import { NyalaHost } from '../host.js'
import { createLogger } from '../logger.js'
import { exitCodes, parse, reportFatal, UsageError } from './common.js'

const startHelp = `Usage: nyala start [options]

Loads every bundle (*.zip, *.jar, directories) in the modules directory, starts
the modules in dependency order and serves them on one HTTP listener.
Logs are pino JSON lines on stdout.

Options:
  --root DIR       root directory; relative paths resolve from it (default: .)
  --config FILE    configuration file (default: <root>/config/impala.properties)
  --port N         listen port, 0 for any free port (key: port, default 8080)
  --host H         listen address (key: host, default 127.0.0.1)
  --watch          watch the modules and hot-reload changed bundles
                   (sets auto.reload.modules=true)
  --admin-port N   admin API port, 0 for any free port (key: admin.port, default 8081)
  --log-level L    fatal|error|warn|info|debug|trace|silent (key: log.level)
  -h, --help       show this help

Signals: SIGTERM stops gracefully (drains up to shutdown.grace.period),
SIGINT stops fast (shutdown.fast.timeout), SIGHUP rescans the modules and
reloads what changed (as the admin API's POST /reload).`

const flagKeys: Record<string, ConfigKey> = {
  port: 'port',
  host: 'host',
  'admin-port': 'admin.port',
  'log-level': 'log.level',
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
    // Only here, without options, a logger at the default level reports the error. One
    // logger per process: a second pino instance on stdout measured ~15 us more CPU per
    // request for the life of the process (bench/dispatch.js; cause inside pino not found).
    return reportFatal(createLogger('info'), err)
  }
  const { options, warnings } = loaded
  const log = createLogger(options.logLevel)
  for (const w of warnings) log.warn(w.toJSON(), w.message)
  if (!loaded.configFound) log.info({ file: options.configFile }, `no ${options.configFile}: using defaults`)

  const host = new NyalaHost(options, log)
  try {
    await host.start()
  } catch (err) {
    await host.close(0).catch(() => {})
    return reportFatal(log, err)
  }
  return new Promise<number>((resolve) => {
    let stopping = false
    const stop = (signal: NodeJS.Signals, graceMs: number) => {
      if (stopping) {
        log.warn({ signal }, `${signal} again: exiting now`)
        resolve(exitCodes.failure)
        return
      }
      stopping = true
      log.info({ signal, graceMs }, `${signal}: stopping (grace ${graceMs} ms)`)
      host.close(graceMs).then(
        () => {
          log.info('stopped')
          resolve(exitCodes.ok)
        },
        (err: unknown) => resolve(reportFatal(log, err)),
      )
    }
    process.on('SIGTERM', () => stop('SIGTERM', options.process.shutdownGraceMs))
    process.on('SIGINT', () => stop('SIGINT', options.process.shutdownFastMs))
    process.on('SIGHUP', () => {
      if (stopping) return
      log.info({ signal: 'SIGHUP' }, 'SIGHUP: rescanning modules')
      host.reloader.rescan('SIGHUP').catch((err: unknown) => reportFatal(log, err))
    })
  })
}
