import * as t from './value-types.js'

/**
 * Every key `impala.properties` knows, with its default (as written in the
 * file) and its parser. Keys for later parts (reload, admin, upgrade) are
 * known here too, so a file written for them never warns.
 */
export interface KeySpec {
  readonly default: string
  readonly parse: (raw: string) => t.Parsed<unknown>
}

export const monitoringTypes = ['default', 'tmpfile', 'stagingDirectory'] as const
const reloadModes = ['overlap', 'blocking'] as const
export const crashPolicies = ['restart', 'fail', 'log'] as const
export const hostCrashActions = ['upgrade', 'exit'] as const
const logFormats = ['auto', 'json', 'pretty'] as const
export const watchdogActions = ['log', 'exit'] as const

export const keySpecs = {
  // serving
  host: { default: '127.0.0.1', parse: t.parseHost },
  port: { default: '8080', parse: t.parsePort },
  'modules.directory': { default: 'modules', parse: t.parseNonEmpty },
  'bundle.max.bytes': { default: '256M', parse: t.parseBytes },
  'bundle.reader.prime': { default: 'true', parse: t.parseBoolean },
  // signed bundles
  'bundle.signature.required': { default: 'false', parse: t.parseBoolean },
  'bundle.signature.threshold': { default: '1', parse: (r) => t.parseInteger(r, 1, 100) },
  'bundle.trusted.keys': { default: 'config/trusted-keys', parse: t.parseNonEmpty },
  'cache.directory': { default: 'run/cache', parse: t.parseNonEmpty },
  'module.start.timeout': { default: '30', parse: t.parseSeconds },
  'module.stop.timeout': { default: '10', parse: t.parseSeconds },
  'log.level': { default: 'info', parse: t.parseLogLevel },
  'log.requests': { default: 'false', parse: t.parseBoolean },
  'log.format': { default: 'auto', parse: (r) => t.parseEnum(r, logFormats) },

  // supervision: what a module's crash does (an uncaught exception or unhandled rejection)
  'module.crash.policy': { default: 'restart', parse: (r) => t.parseEnum(r, crashPolicies) },
  'module.crash.max.restarts': { default: '5', parse: (r) => t.parseInteger(r, 0, 1_000_000) },
  'module.crash.window': { default: '60', parse: t.parseSeconds },

  // the host's own crash (an uncaught error no module code is found in): replace the process
  'host.crash.action': { default: 'upgrade', parse: (r) => t.parseEnum(r, hostCrashActions) },
  'host.crash.upgrade.timeout': { default: '60', parse: t.parseSeconds },
  'host.crash.max.upgrades': { default: '3', parse: (r) => t.parseInteger(r, 0, 1000) },
  'host.crash.window': { default: '60', parse: t.parseSeconds },
  // the watchdog: an event loop that has not turned for this long is reported (0: off)
  'watchdog.stall.ms': { default: '2000', parse: t.parseStallMs },
  'watchdog.action': { default: 'log', parse: (r) => t.parseEnum(r, watchdogActions) },

  // worker processes (src/cluster/): 1 serves from this process, as without the key
  workers: { default: '1', parse: t.parseWorkers },
  'cluster.prepare.timeout': { default: '60', parse: t.parseSeconds },
  'cluster.commit.lead': { default: '10', parse: (r) => t.parseInteger(r, 0, 10_000) },
  'workers.restart.max': { default: '5', parse: (r) => t.parseInteger(r, 0, 1_000_000) },
  'workers.restart.window': { default: '60', parse: t.parseSeconds },

  // thread isolation (src/isolate/): these modules run in a worker thread of their own
  'isolation.thread.modules': { default: '', parse: t.parseList },
  'isolation.thread.heap.mb': { default: '0', parse: (r) => t.parseInteger(r, 0, 1_000_000) },
  'isolation.thread.stall.ms': { default: '5000', parse: (r) => t.parseInteger(r, 100, 3_600_000) },
  'isolation.thread.nice': { default: '5', parse: (r) => t.parseInteger(r, 0, 19) },

  // reloading (Impala's names)
  'auto.reload.modules': { default: 'false', parse: t.parseBoolean },
  'auto.reload.monitoring.type': {
    default: 'default',
    parse: (r) => t.parseEnumList(r, monitoringTypes),
  },
  'auto.reload.staging.directory': { default: '../staging', parse: t.parseNonEmpty },
  'use.touch.file': { default: 'false', parse: t.parseBoolean },
  'touch.file': { default: 'modules/touch.txt', parse: t.parseNonEmpty },
  'auto.reload.extension.includes': { default: '', parse: t.parseList },
  'auto.reload.extension.excludes': { default: '', parse: t.parseList },
  'auto.reload.polling': { default: 'false', parse: t.parseBoolean },
  'auto.reload.check.interval': { default: '2', parse: t.parseSeconds },
  'auto.reload.settle.ms': { default: '250', parse: t.parseMilliseconds },
  'auto.reload.settle.timeout': { default: '60', parse: t.parseSeconds },
  'auto.reload.mode': { default: 'overlap', parse: (r) => t.parseEnum(r, reloadModes) },
  'auto.reload.drain.timeout': { default: '30', parse: t.parseSeconds },
  'auto.reload.block.timeout': { default: '10', parse: t.parseSeconds },
  'auto.reload.fsync': { default: 'true', parse: t.parseBoolean },

  // choosing what reloads (Apache2::Reload)
  'reload.all': { default: 'true', parse: t.parseBoolean },
  'reload.modules': { default: '', parse: t.parseList },
  'reload.directories': { default: '', parse: t.parseList },
  'reload.debug': { default: 'false', parse: t.parseBoolean },

  // admin API
  'admin.host': { default: '127.0.0.1', parse: t.parseHost },
  'admin.port': { default: '8081', parse: t.parsePort },
  'admin.token': { default: '', parse: t.parseString },

  // process upgrade and shutdown
  'pid.file': { default: 'run/nyala.pid', parse: t.parseNonEmpty },
  'upgrade.socket': { default: 'run/upgrade.sock', parse: t.parseNonEmpty },
  'upgrade.wait.timeout': { default: '60', parse: t.parseSeconds },
  'log.file': { default: 'nyala.log', parse: t.parseNonEmpty },
  'shutdown.grace.period': { default: '30', parse: t.parseSeconds },
  'shutdown.fast.timeout': { default: '5', parse: t.parseSeconds },
} as const satisfies Record<string, KeySpec>

export type ConfigKey = keyof typeof keySpecs

/** The parsed value type of each key. */
export type ConfigValues = {
  -readonly [K in ConfigKey]: (typeof keySpecs)[K]['parse'] extends (raw: string) => t.Parsed<infer V>
    ? V
    : never
}

export const configKeys: readonly ConfigKey[] = Object.freeze(Object.keys(keySpecs) as ConfigKey[])
