#!/usr/bin/env node
// Fastify first: measured in bench/dispatch.js, loading jszip (and its stream
// polyfills) before Fastify left request handling ~15% slower for the life of
// the process; the cause looks like V8 optimisation order, not our code.
import 'fastify'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { openBundle } from './bundle/open-bundle.js'
import { packDirectory } from './bundle/pack.js'
import { type HostFlags, loadHostOptions } from './config/host-options.js'
import type { ConfigKey } from './config/keys.js'
import { isNyalaError, nyalaError, reasonOf } from './errors.js'
import { NyalaHost } from './host.js'
import { createLogger, type Logger } from './logger.js'

/** Exit codes, documented in the README. */
export const exitCodes = Object.freeze({ ok: 0, failure: 1, usage: 2 })

const version = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version

const mainHelp = `nyala ${version}: a plugin-module host with hot module reload

Usage: nyala <command> [options]

Commands:
  start          load the bundles of modules/ and serve them
  pack <dir>     pack a module directory into a bundle (zip)

Options:
  -h, --help     show help (also: nyala <command> --help)
  -v, --version  print the version

Exit codes: 0 success, 1 failure (bad configuration, cannot listen, bad bundle), 2 usage error.
Error codes (NYALA_ERR_*) are listed in docs/errors.md.`

const startHelp = `Usage: nyala start [options]

Loads every bundle (*.zip, *.jar, directories) in the modules directory, starts
the modules in dependency order and serves them on one HTTP listener.
Logs are pino JSON lines on stdout.

Options:
  --root DIR       root directory; relative paths resolve from it (default: .)
  --config FILE    configuration file (default: <root>/config/impala.properties)
  --port N         listen port, 0 for any free port (key: port, default 8080)
  --host H         listen address (key: host, default 127.0.0.1)
  --log-level L    fatal|error|warn|info|debug|trace|silent (key: log.level)
  -h, --help       show this help

Signals: SIGTERM stops gracefully (drains up to shutdown.grace.period),
SIGINT stops fast (shutdown.fast.timeout).`

const packHelp = `Usage: nyala pack <dir> [-o out.zip]

Packs a module source directory (with module.properties at its root) into a
bundle. The bundle is validated after packing, as the host would open it.

Options:
  -o, --out FILE   output file (default: <dir>.zip)
  -h, --help       show this help`

class UsageError extends Error {}

type ParsedArgs = { values: Record<string, string | boolean | undefined>; positionals: string[] }

function parse(args: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options']): ParsedArgs {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true }) as ParsedArgs
  } catch (err) {
    throw new UsageError(reasonOf(err))
  }
}

const flagKeys: Record<string, ConfigKey> = { port: 'port', host: 'host', 'log-level': 'log.level' }

async function start(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    config: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
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
  })
}

async function pack(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    out: { type: 'string', short: 'o' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${packHelp}\n`)
    return exitCodes.ok
  }
  const [dir, ...rest] = positionals
  if (!dir || rest.length > 0) throw new UsageError('pack takes one directory: nyala pack <dir> [-o out.zip]')
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw nyalaError('NYALA_ERR_DIRECTORY_NOT_FOUND', { what: 'module source', path: dir })
  }
  // validate the source first: a bundle the host would refuse is not written
  const source = await openBundle(dir)
  const out = await packDirectory(dir, { out: values.out as string | undefined })
  const bundle = await openBundle(out, { name: source.name })
  process.stdout.write(
    `${out}: module ${bundle.name} ${bundle.manifest.version}, ${bundle.files.size} files, sha256 ${bundle.hash.slice(0, 12)}\n`,
  )
  return exitCodes.ok
}

function reportFatal(log: Logger, err: unknown): number {
  if (isNyalaError(err)) {
    log.fatal(err.toJSON(), err.message)
    process.stderr.write(`nyala: ${err.code}: ${err.message}\n`)
  } else {
    log.fatal({ err }, reasonOf(err))
    process.stderr.write(`nyala: ${reasonOf(err)}\n`)
  }
  return exitCodes.failure
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv
  try {
    switch (command) {
      case 'start':
        return await start(args)
      case 'pack':
        return await pack(args)
      case '-v':
      case '--version':
        process.stdout.write(`${version}\n`)
        return exitCodes.ok
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(`${mainHelp}\n`)
        return command === undefined ? exitCodes.usage : exitCodes.ok
      default:
        throw new UsageError(`unknown command "${command}"`)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      const usage = nyalaError('NYALA_ERR_CLI_USAGE', { reason: err.message })
      process.stderr.write(`nyala: ${usage.code}: ${usage.message}\nRun "nyala --help" for usage.\n`)
      return exitCodes.usage
    }
    if (isNyalaError(err)) {
      process.stderr.write(`nyala: ${err.code}: ${err.message}\n`)
      return exitCodes.failure
    }
    throw err
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // module code may leave handles open (sockets, timers outside ctx): do not hang on exit
    process.exitCode = code
    setImmediate(() => process.exit(code))
  },
  (err: unknown) => {
    process.stderr.write(`nyala: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(exitCodes.failure)
  },
)
