import { loadHostOptions } from '../config/host-options.js'
import { runUpgrade } from '../upgrade/run-upgrade.js'
import { exitCodes, parse, UsageError } from './common.js'

const upgradeHelp = `Usage: nyala upgrade [options]

Replaces the running instance with a new process without refusing a connection:
starts "nyala start --upgrade --daemonize" with the same options, waits until it
has loaded every module, sends SIGQUIT to the pid in the pidfile, and waits for
the pidfile to name the new process. The old process finishes its in-flight
requests and exits. On any failure (a module that serves now fails to start in
the new process, no answer on the upgrade socket) the old process keeps serving
and this command exits 1 with the reason.

Options:
  --root DIR              root directory; relative paths resolve from it
                          (default: .)
  --config FILE           configuration file
                          (default: <root>/config/impala.properties)
  --pidfile FILE          pidfile of the running instance (key: pid.file)
  --upgrade-socket FILE   upgrade socket (key: upgrade.socket)
  --watch                 the new process hot-reloads modules (as start --watch)
  --log-level L           the new process's log level (as start --log-level)
  --log-format F          the new process's log format (as start --log-format;
                          under auto it writes JSON, its stdout being log.file)
  -h, --help              show this help

The new process reads the configuration file afresh. Flags the running instance
was started with are not copied: give --watch, --log-level or --log-format
again if it had them. The listeners keep their addresses (a changed port
applies to a fresh start only).`

export async function upgrade(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    root: { type: 'string' },
    config: { type: 'string' },
    pidfile: { type: 'string' },
    'upgrade-socket': { type: 'string' },
    watch: { type: 'boolean' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${upgradeHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length > 0)
    throw new UsageError(`upgrade takes no arguments, got "${positionals.join(' ')}"`)
  const str = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined)
  const set: Record<string, string> = {}
  const flagNames: Record<string, string> = {}
  if (str('pidfile')) {
    set['pid.file'] = str('pidfile')!
    flagNames['pid.file'] = '--pidfile'
  }
  if (str('upgrade-socket')) {
    set['upgrade.socket'] = str('upgrade-socket')!
    flagNames['upgrade.socket'] = '--upgrade-socket'
  }
  // validated here, so a bad value fails before anything is started
  if (str('log-level')) {
    set['log.level'] = str('log-level')!
    flagNames['log.level'] = '--log-level'
  }
  if (str('log-format')) {
    set['log.format'] = str('log-format')!
    flagNames['log.format'] = '--log-format'
  }
  const { options } = loadHostOptions({ root: str('root'), config: str('config'), set, flagNames })
  // the successor gets the same flags, so it resolves every path as this command did
  const forwarded = ['--root', options.root]
  if (str('config')) forwarded.push('--config', options.configFile)
  if (str('pidfile')) forwarded.push('--pidfile', str('pidfile')!)
  if (str('upgrade-socket')) forwarded.push('--upgrade-socket', str('upgrade-socket')!)
  if (values.watch) forwarded.push('--watch')
  if (str('log-level')) forwarded.push('--log-level', str('log-level')!)
  if (str('log-format')) forwarded.push('--log-format', str('log-format')!)
  const say = (line: string) => process.stdout.write(`${line}\n`)
  const { old, successor } = await runUpgrade(process.argv[1]!, forwarded, options, say)
  say(`nyala: upgraded: pid ${successor} serves, pid ${old} is draining and will exit`)
  return exitCodes.ok
}
