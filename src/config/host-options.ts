import { existsSync, statSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { type NyalaError, nyalaError } from '../errors.js'
import { closest } from './closest.js'
import { type ConfigKey, type ConfigValues, configKeys, keySpecs } from './keys.js'
import { readPropertiesFile } from './read-properties.js'

export type MonitoringType = ConfigValues['auto.reload.monitoring.type'][number]
export type ReloadMode = ConfigValues['auto.reload.mode']
export type CrashPolicy = ConfigValues['module.crash.policy']
export type HostCrashAction = ConfigValues['host.crash.action']
export type LogFormatSetting = ConfigValues['log.format']
export type WatchdogAction = ConfigValues['watchdog.action']

/**
 * Everything the host runs with: `impala.properties` merged with the command
 * line, validated, with paths made absolute. Built once, then frozen.
 * Durations are in milliseconds.
 */
export interface HostOptions {
  /** The root directory; relative paths of keys and flags are resolved from it. @default process.cwd() */
  readonly root: string
  /** The configuration file. @default `<root>/config/impala.properties` */
  readonly configFile: string
  /** Where `<module>.properties` files live: the configuration file's directory. */
  readonly configDir: string
  /** `host`. @default '127.0.0.1' */
  readonly host: string
  /** `port`; 0 picks a free port. @default 8080 */
  readonly port: number
  /** `modules.directory`, absolute. @default `<root>/modules` */
  readonly modulesDir: string
  /** `bundle.max.bytes`: inflated size a bundle may reach. @default 268435456 (256 MiB) */
  readonly bundleMaxBytes: number
  /**
   * `bundle.reader.prime`: after start-up, the bundle reader's thread reads
   * every zip bundle ahead and keeps it (at most 128 MiB in all), so the first
   * reload of a module inflates only what changed, as later ones do.
   * @default true
   */
  readonly bundleReaderPrime: boolean
  /** Which bundles may run: signatures checked on the load path (docs/signing.md). */
  readonly signature: Readonly<{
    /** `bundle.signature.required`: refuse unsigned bundles. A signature present is checked either way. @default false */
    required: boolean
    /** `bundle.signature.threshold`: distinct trusted keys whose signatures must verify. @default 1 */
    threshold: number
    /** `bundle.trusted.keys`, absolute: one `.pub` file per trusted key, read again on every reload. @default `<root>/config/trusted-keys` */
    trustedKeysDir: string
  }>
  /**
   * `cache.directory`, absolute: where a bundle's files are written, one read-only directory
   * per distinct content, for code that reads files beside itself (`__dirname`) and for native
   * addons. JavaScript still runs from memory. @default `<root>/run/cache`
   */
  readonly cacheDir: string
  /** `module.start.timeout`: how long `register` may take. @default 30000 */
  readonly moduleStartTimeoutMs: number
  /** `module.stop.timeout`: how long a module's `stop` may take. @default 10000 */
  readonly moduleStopTimeoutMs: number
  /** `log.level`. @default 'info' */
  readonly logLevel: string
  /** `log.requests`: one log line per request (Fastify's request logging). @default false */
  readonly logRequests: boolean
  /**
   * `log.format`: `auto` writes readable lines when stdout is a terminal and JSON lines
   * otherwise (a pipe, a file, `--daemonize`); `json` and `pretty` choose one.
   * @default 'auto'
   */
  readonly logFormat: LogFormatSetting
  /** What an uncaught exception or unhandled rejection of a module's code does (src/supervise/). */
  readonly crash: Readonly<{
    /**
     * `module.crash.policy`: `restart` rebuilds the module (and its dependents)
     * from its current bundle, `fail` marks it failed, `log` only logs. @default 'restart'
     */
    policy: CrashPolicy
    /** `module.crash.max.restarts`: restarts allowed within the window; one more crash fails the module. @default 5 */
    maxRestarts: number
    /** `module.crash.window`: the window of `maxRestarts`. @default 60000 */
    windowMs: number
  }>
  /** What an uncaught error no module code is found in (the host's own) does (src/upgrade/crash-handover.ts). */
  readonly hostCrash: Readonly<{
    /**
     * `host.crash.action`: `upgrade` starts a successor (`nyala start --upgrade` with this
     * process's arguments), hands it the listeners, drains and exits 0; `exit` exits 1 at once.
     * @default 'upgrade'
     */
    action: HostCrashAction
    /** `host.crash.upgrade.timeout`: how long the successor may take to load every module. @default 60000 */
    upgradeTimeoutMs: number
    /**
     * `host.crash.max.upgrades`: replacements allowed within the window, counted along the chain
     * of successors; one more host crash exits 1 (NYALA_ERR_HOST_CRASH_LOOP). @default 3
     */
    maxUpgrades: number
    /** `host.crash.window`: the window of `maxUpgrades`. @default 60000 */
    windowMs: number
  }>
  /** A thread that watches the main thread's event loop (src/supervise/watchdog.ts). */
  readonly watchdog: Readonly<{
    /**
     * `watchdog.stall.ms`: an event loop that has not turned for this long is
     * logged with the module and route that were running; 0 turns the watchdog off.
     * @default 2000
     */
    stallMs: number
    /**
     * `watchdog.action`: `log` logs the stall (and the recovery); `exit` logs it, then
     * ends the process with exit code 3, for a process manager to restart it.
     * @default 'log'
     */
    action: WatchdogAction
  }>
  /** Worker processes (src/cluster/): how many, and how their supervisor treats them. */
  readonly cluster: Readonly<{
    /**
     * `workers`: 1 serves from this process; more starts a supervisor that owns the
     * listeners and forks this many worker processes, each loading every module;
     * `auto` is one per core (`os.availableParallelism()`).
     * @default 1
     */
    workers: number
    /**
     * `cluster.prepare.timeout`: how long every worker has to start the new generations of a
     * reload (PREPARE) before the reload is aborted everywhere.
     * @default 60000
     */
    prepareTimeoutMs: number
    /**
     * `cluster.commit.lead` (ms): how far ahead of the swap instant the supervisor sends COMMIT.
     * Every worker swaps at that instant; one whose COMMIT arrives later swaps on arrival, and
     * the commit skew is that lateness. 0 swaps each worker on arrival.
     * @default 10
     */
    commitLeadMs: number
    /** `workers.restart.max`: worker replacements allowed within the window; past it the slot is failed. @default 5 */
    maxRestarts: number
    /** `workers.restart.window`: the window of `maxRestarts`. @default 60000 */
    restartWindowMs: number
  }>
  readonly autoReload: Readonly<{
    /** `auto.reload.modules`. @default false */
    enabled: boolean
    /**
     * `auto.reload.monitoring.type`: every deploy path watched, a comma-separated
     * list (the shipped configuration lists `tmpfile, stagingDirectory`).
     * @default ['default']
     */
    monitoringTypes: readonly MonitoringType[]
    /** `auto.reload.staging.directory`, absolute (relative to the modules directory). @default `<root>/staging` */
    stagingDir: string
    /**
     * `use.touch.file`: the touch file is the only trigger. Touching it always
     * rescans, even when this is false. @default false
     */
    useTouchFile: boolean
    /** `touch.file`, absolute. @default `<root>/modules/touch.txt` */
    touchFile: string
    /** `auto.reload.extension.includes`. @default [] */
    extensionIncludes: readonly string[]
    /** `auto.reload.extension.excludes`. @default [] */
    extensionExcludes: readonly string[]
    /** `auto.reload.polling`. @default false */
    polling: boolean
    /** `auto.reload.check.interval`. @default 2000 */
    checkIntervalMs: number
    /** `auto.reload.settle.ms`. @default 250 */
    settleMs: number
    /** `auto.reload.settle.timeout`. @default 60000 */
    settleTimeoutMs: number
    /** `auto.reload.mode`. @default 'overlap' */
    mode: ReloadMode
    /** `auto.reload.drain.timeout`. @default 30000 */
    drainTimeoutMs: number
    /** `auto.reload.block.timeout`. @default 10000 */
    blockTimeoutMs: number
    /**
     * `auto.reload.fsync`: flush a committed bundle and its directory to the
     * device, so a power cut cannot lose or tear it (docs/deploying.md).
     * @default true
     */
    fsync: boolean
  }>
  readonly reload: Readonly<{
    /** `reload.all`. @default true */
    all: boolean
    /** `reload.modules`: names with `*` wildcards. @default [] */
    modules: readonly string[]
    /** `reload.directories`, absolute. @default [] */
    directories: readonly string[]
    /** `reload.debug`. @default false */
    debug: boolean
  }>
  /** Modules that run in a worker thread of their own (src/isolate/, docs/modules.md). */
  readonly isolation: Readonly<{
    /**
     * `isolation.thread.modules`: names with `*` wildcards (as `reload.modules`) of modules run in
     * a thread of their own, whatever their `module.properties` says. @default []
     */
    modules: readonly string[]
    /** `isolation.thread.heap.mb`: the old-generation heap limit of each module thread; 0 is Node's default. @default 0 */
    heapMb: number
    /**
     * `isolation.thread.stall.ms`: a module thread that has not answered a ping for this long is
     * terminated and handled as a crash of its module (`module.crash.policy`); while the thread
     * starts or a generation loads and registers in it, `module.start.timeout` is the limit
     * instead. @default 5000
     */
    stallMs: number
    /**
     * `isolation.thread.nice`: how much lower than the serving thread a module thread's CPU
     * priority is (Linux; 0 keeps the same priority). @default 5
     */
    nice: number
  }>
  readonly admin: Readonly<{
    /** `admin.host`. @default '127.0.0.1' */
    host: string
    /** `admin.port`. @default 8081 */
    port: number
    /** `admin.token`; required when `admin.host` is not loopback. @default '' */
    token: string
  }>
  readonly process: Readonly<{
    /** `pid.file`, absolute. @default `<root>/run/nyala.pid` */
    pidFile: string
    /** `upgrade.socket`, absolute. @default `<root>/run/upgrade.sock` */
    upgradeSocket: string
    /** `upgrade.wait.timeout`. @default 60000 */
    upgradeWaitTimeoutMs: number
    /** `log.file`, absolute (used with `--daemonize`). @default `<root>/nyala.log` */
    logFile: string
    /** `shutdown.grace.period`. @default 30000 */
    shutdownGraceMs: number
    /** `shutdown.fast.timeout`. @default 5000 */
    shutdownFastMs: number
  }>
}

/** What the command line may set; values are raw strings, validated like file values. */
export interface HostFlags {
  root?: string | undefined
  config?: string | undefined
  /** Keys set on the command line, by configuration key (`--port` is `port`). */
  set?: Partial<Record<ConfigKey, string>> | undefined
  /** The flag name of each key set on the command line, for error messages. */
  flagNames?: Partial<Record<ConfigKey, string>> | undefined
}

export interface LoadedOptions {
  readonly options: HostOptions
  /** Problems that do not stop start-up (unknown keys), to be logged. */
  readonly warnings: readonly NyalaError[]
  /** False when the default configuration file is absent and defaults were used. */
  readonly configFound: boolean
}

const defaultConfigFile = path.join('config', 'impala.properties')

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

/**
 * Reads the configuration file and the flags into one frozen `HostOptions`.
 * Throws a `NyalaError` naming file, key, value and what was expected for
 * the first bad value; unknown keys come back as warnings.
 */
export function loadHostOptions(flags: HostFlags = {}, cwd = process.cwd()): LoadedOptions {
  const root = path.resolve(cwd, flags.root ?? '.')
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw nyalaError('NYALA_ERR_DIRECTORY_NOT_FOUND', { what: 'root', path: root })
  }
  const configFile = path.resolve(root, flags.config ?? defaultConfigFile)
  const fileValues = readPropertiesFile(configFile)
  if (!fileValues && flags.config !== undefined) {
    throw nyalaError('NYALA_ERR_CONFIG_NOT_FOUND', { file: configFile })
  }

  const warnings: NyalaError[] = []
  const values = {} as Record<ConfigKey, unknown>
  for (const key of configKeys) values[key] = parseOrThrow(key, keySpecs[key].default, 'defaults')
  for (const [key, raw] of fileValues ?? []) {
    if (!(key in keySpecs)) {
      const near = closest(key, configKeys)
      warnings.push(
        nyalaError('NYALA_ERR_CONFIG_UNKNOWN_KEY', {
          file: configFile,
          key,
          hint: near ? `did you mean "${near}"?` : 'it is ignored',
        }),
      )
      continue
    }
    values[key as ConfigKey] = parseOrThrow(key as ConfigKey, raw, configFile)
  }
  for (const [key, raw] of Object.entries(flags.set ?? {}) as [ConfigKey, string | undefined][]) {
    if (raw === undefined) continue
    const flag = flags.flagNames?.[key] ?? key
    values[key] = parseOrThrow(key, raw, 'command line', flag)
  }
  const v = values as ConfigValues
  // the admin API reloads code: off this machine only with a token
  if (!isLoopbackHost(v['admin.host']) && v['admin.token'] === '') {
    throw nyalaError('NYALA_ERR_CONFIG_VALUE', {
      file: configFile,
      key: 'admin.token',
      value: '',
      expected: `a token (admin.host=${v['admin.host']} is not a loopback address)`,
    })
  }
  const modulesDir = path.resolve(root, v['modules.directory'])

  const options: HostOptions = {
    root,
    configFile,
    configDir: path.dirname(configFile),
    host: v.host,
    port: v.port,
    modulesDir,
    bundleMaxBytes: v['bundle.max.bytes'],
    bundleReaderPrime: v['bundle.reader.prime'],
    signature: {
      required: v['bundle.signature.required'],
      threshold: v['bundle.signature.threshold'],
      trustedKeysDir: path.resolve(root, v['bundle.trusted.keys']),
    },
    cacheDir: path.resolve(root, v['cache.directory']),
    moduleStartTimeoutMs: v['module.start.timeout'],
    moduleStopTimeoutMs: v['module.stop.timeout'],
    logLevel: v['log.level'],
    logRequests: v['log.requests'],
    logFormat: v['log.format'],
    crash: {
      policy: v['module.crash.policy'],
      maxRestarts: v['module.crash.max.restarts'],
      windowMs: v['module.crash.window'],
    },
    hostCrash: {
      action: v['host.crash.action'],
      upgradeTimeoutMs: v['host.crash.upgrade.timeout'],
      maxUpgrades: v['host.crash.max.upgrades'],
      windowMs: v['host.crash.window'],
    },
    watchdog: { stallMs: v['watchdog.stall.ms'], action: v['watchdog.action'] },
    cluster: {
      workers: v.workers === 'auto' ? availableParallelism() : v.workers,
      prepareTimeoutMs: v['cluster.prepare.timeout'],
      commitLeadMs: v['cluster.commit.lead'],
      maxRestarts: v['workers.restart.max'],
      restartWindowMs: v['workers.restart.window'],
    },
    autoReload: {
      enabled: v['auto.reload.modules'],
      monitoringTypes: v['auto.reload.monitoring.type'],
      stagingDir: path.resolve(modulesDir, v['auto.reload.staging.directory']),
      useTouchFile: v['use.touch.file'],
      touchFile: path.resolve(root, v['touch.file']),
      extensionIncludes: v['auto.reload.extension.includes'],
      extensionExcludes: v['auto.reload.extension.excludes'],
      polling: v['auto.reload.polling'],
      checkIntervalMs: v['auto.reload.check.interval'],
      settleMs: v['auto.reload.settle.ms'],
      settleTimeoutMs: v['auto.reload.settle.timeout'],
      mode: v['auto.reload.mode'],
      drainTimeoutMs: v['auto.reload.drain.timeout'],
      blockTimeoutMs: v['auto.reload.block.timeout'],
      fsync: v['auto.reload.fsync'],
    },
    reload: {
      all: v['reload.all'],
      modules: v['reload.modules'],
      directories: v['reload.directories'].map((d) => path.resolve(root, d)),
      debug: v['reload.debug'],
    },
    isolation: {
      modules: v['isolation.thread.modules'],
      heapMb: v['isolation.thread.heap.mb'],
      stallMs: v['isolation.thread.stall.ms'],
      nice: v['isolation.thread.nice'],
    },
    admin: { host: v['admin.host'], port: v['admin.port'], token: v['admin.token'] },
    process: {
      pidFile: path.resolve(root, v['pid.file']),
      upgradeSocket: path.resolve(root, v['upgrade.socket']),
      upgradeWaitTimeoutMs: v['upgrade.wait.timeout'],
      logFile: path.resolve(root, v['log.file']),
      shutdownGraceMs: v['shutdown.grace.period'],
      shutdownFastMs: v['shutdown.fast.timeout'],
    },
  }
  return { options: deepFreeze(options), warnings: Object.freeze(warnings), configFound: !!fileValues }
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.')
}

function parseOrThrow(key: ConfigKey, raw: string, file: string, label: string = key): unknown {
  const parsed = keySpecs[key].parse(raw)
  if (!parsed.ok) {
    throw nyalaError('NYALA_ERR_CONFIG_VALUE', { file, key: label, value: raw, expected: parsed.expected })
  }
  return parsed.value
}
