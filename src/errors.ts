/**
 * Every error Nyala reports, in one place, each with a stable code.
 *
 * Module code may load its own copy of a class, so callers check `err.code`,
 * never `instanceof` across the module boundary. Messages are templates whose
 * `{placeholders}` are filled from a details object; the same details go into
 * the log record, so a record always names the file, key, bundle or module.
 * Every code here is documented in docs/errors.md (a test checks it).
 */

interface Definition {
  readonly message: string
  /** HTTP status when the error answers a request or an admin call. */
  readonly status: number
}

const definitions = {
  // configuration and command line: these stop start-up
  NYALA_ERR_CONFIG_NOT_FOUND: { message: 'configuration file {file} does not exist', status: 500 },
  NYALA_ERR_CONFIG_READ: { message: 'cannot read configuration file {file}: {reason}', status: 500 },
  NYALA_ERR_CONFIG_VALUE: {
    message: '{file}: key "{key}" has value "{value}", expected {expected}',
    status: 500,
  },
  NYALA_ERR_CONFIG_UNKNOWN_KEY: { message: '{file}: unknown key "{key}"; {hint}', status: 500 },
  NYALA_ERR_DIRECTORY_NOT_FOUND: { message: '{what} directory {path} does not exist', status: 500 },
  NYALA_ERR_CLI_USAGE: { message: '{reason}', status: 400 },
  NYALA_ERR_LISTEN: {
    message: 'the {listener} cannot listen on {host}:{port}: {reason}; choose another with {keys}',
    status: 500,
  },

  // bundles
  NYALA_ERR_BUNDLE_READ: { message: '{bundle}: cannot read bundle: {reason}', status: 422 },
  NYALA_ERR_BUNDLE_NAME: {
    message: '{bundle}: the file name gives no valid module name (expected letters, digits, ".", "_" or "-")',
    status: 422,
  },
  NYALA_ERR_BUNDLE_NOT_ZIP: { message: '{bundle}: not a zip file: {reason}', status: 422 },
  NYALA_ERR_BUNDLE_TRUNCATED: {
    message: '{bundle}: truncated zip (no end of central directory): {reason}',
    status: 422,
  },
  NYALA_ERR_BUNDLE_CORRUPT: {
    message: '{bundle}: entry "{entry}" cannot be inflated: {reason}',
    status: 422,
  },
  NYALA_ERR_BUNDLE_UNSAFE_ENTRY: {
    message: '{bundle}: entry "{entry}" leaves the bundle root (".." or absolute path)',
    status: 422,
  },
  NYALA_ERR_BUNDLE_TOO_LARGE: {
    message: '{bundle}: inflated content passes bundle.max.bytes ({limit} bytes) at entry "{entry}"',
    status: 413,
  },
  NYALA_ERR_BUNDLE_DUPLICATE: {
    message: 'module "{module}" is provided by two bundles: {bundle} and {other}',
    status: 409,
  },
  // bundle limits and entry kinds found by fuzzing (issue 14 part 6)
  NYALA_ERR_BUNDLE_TOO_MANY_ENTRIES: {
    message: '{bundle}: the zip holds more than {limit} entries',
    status: 413,
  },
  NYALA_ERR_BUNDLE_ENTRY_NAME: {
    message: '{bundle}: an entry name of {bytes} bytes, expected at most {limit}',
    status: 422,
  },
  NYALA_ERR_BUNDLE_ENTRY_TYPE: {
    message: '{bundle}: entry "{entry}" is a {type}, expected a regular file',
    status: 422,
  },
  NYALA_ERR_BUNDLE_DUPLICATE_ENTRY: {
    message: '{bundle}: entry "{entry}" is a second entry of the same path',
    status: 422,
  },

  // signed bundles (docs/signing.md): every refusal of a signature starts NYALA_ERR_BUNDLE_SIGNATURE
  NYALA_ERR_BUNDLE_SIGNATURE_MISSING: {
    message: '{bundle}: not signed, and bundle.signature.required=true (trusted keys in {dir})',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_MALFORMED: {
    message: '{bundle}: signature entry {entry} cannot be used: {reason}',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_MODULE: {
    message: '{bundle}: signed for {what} "{signed}", but the bundle is {what} "{actual}"',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_UNKNOWN_KEY: {
    message: '{bundle}: signed by key {keyId}, which is not a trusted key (no such .pub file in {dir})',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_KEY_EXPIRED: {
    message: '{bundle}: signed by key {keyId}, which expired at {expires} ({file})',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_KEY_REVOKED: {
    message: '{bundle}: signed by key {keyId}, which is revoked ({file})',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_INVALID: {
    message:
      "{bundle}: the signature by trusted key {keyId} does not verify (the signed list was changed after signing, or the signature is not this key's)",
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_THRESHOLD: {
    message:
      '{bundle}: {found} trusted key(s) signed it ({keyIds}), expected at least {threshold} (bundle.signature.threshold)',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_UNCOVERED: {
    message: '{bundle}: entry "{entry}" is not covered by the signature',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_ENTRY_MISMATCH: {
    message: '{bundle}: signed entry "{entry}" {reason}',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_DUPLICATE_ENTRY: {
    message: '{bundle}: entry "{entry}" appears {count} times; a signed bundle has one entry per name',
    status: 422,
  },
  NYALA_ERR_BUNDLE_SIGNATURE_ROLLBACK: {
    message:
      '{bundle}: signed with sequence {sequence}, lower than {running}, the sequence of generation {generation} of module "{module}" that is running',
    status: 409,
  },
  NYALA_ERR_TRUSTED_KEY_INVALID: {
    message: '{file}: key "{key}" has value "{value}", expected {expected}',
    status: 500,
  },
  NYALA_ERR_SIGNING_KEY: { message: '{file}: cannot sign with this key: {reason}', status: 400 },

  NYALA_ERR_MANIFEST_MISSING: { message: '{bundle}: no module.properties at the bundle root', status: 422 },
  NYALA_ERR_MANIFEST_INVALID: {
    message: '{bundle}: module.properties key "{key}" has value "{value}", expected {expected}',
    status: 422,
  },
  NYALA_ERR_MAIN_MISSING: {
    message: '{bundle}: main file "{entry}" named by module.properties is not in the bundle',
    status: 422,
  },

  // loading module code
  NYALA_ERR_MODULE_SYNTAX: { message: '{bundle}: syntax error at {location}: {reason}', status: 422 },
  NYALA_ERR_MODULE_REQUIRE: {
    message: '{bundle}: {from} cannot require "{request}": {reason}',
    status: 422,
  },
  NYALA_ERR_MODULE_EVAL: { message: '{bundle}: {entry} threw while loading: {reason}', status: 422 },
  NYALA_ERR_MODULE_NO_REGISTER: {
    message: '{bundle}: {entry} exports no register function (module.exports = fn, .register or .default)',
    status: 422,
  },

  // ES modules and TypeScript (issue 15, parts 1 and 2)
  NYALA_ERR_MODULE_TOP_LEVEL_AWAIT: {
    message:
      '{bundle}: {location} uses top-level await, which module code cannot (it is run as CommonJS from memory): move it into register or an async function',
    status: 422,
  },
  // files on disk where code expects them (issue 15 part 3): the content-addressed cache and native addons
  NYALA_ERR_ADDON_INCOMPATIBLE: {
    message: '{bundle}: native addon "{entry}" was built for {found}, this process needs {expected}',
    status: 422,
  },
  NYALA_ERR_ADDON_LOAD: {
    message: '{bundle}: native addon "{entry}" cannot be loaded: {reason}',
    status: 422,
  },
  NYALA_ERR_CACHE_WRITE: {
    message: '{bundle}: cannot write its files to the cache directory {dir}: {reason}',
    status: 500,
  },

  // the module graph
  NYALA_ERR_DEPENDENCY_CYCLE: {
    message: 'module "{module}" is in a dependency cycle: {cycle}',
    status: 422,
  },
  NYALA_ERR_DEPENDENCY_MISSING: {
    message: 'module "{module}" depends on "{dependency}", which is not deployed',
    status: 422,
  },
  NYALA_ERR_DEPENDENCY_FAILED: {
    message: 'module "{module}" not started: its dependency "{dependency}" is not running',
    status: 422,
  },
  NYALA_ERR_PREFIX_CONFLICT: {
    message: 'modules "{module}" and "{other}" both claim the URL prefix {prefix}',
    status: 409,
  },

  // module generations
  NYALA_ERR_MODULE_REGISTER_FAILED: { message: 'module "{module}": register failed: {reason}', status: 422 },
  NYALA_ERR_MODULE_START_TIMEOUT: {
    message: 'module "{module}": register did not finish within module.start.timeout ({timeout} ms)',
    status: 422,
  },
  NYALA_ERR_MODULE_STOP_FAILED: { message: 'module "{module}": stop failed: {reason}', status: 500 },
  NYALA_ERR_MODULE_CRASHED: {
    message:
      'module "{module}" generation {generation} crashed ({origin}, module.crash.policy={policy}): {reason}',
    status: 500,
  },
  NYALA_ERR_MODULE_CRASH_LOOP: {
    message:
      'module "{module}" crashed {restarts} times within {window} s (module.crash.max.restarts={max}): not restarted again; last crash: {reason}',
    status: 503,
  },
  NYALA_ERR_UNDECLARED_DEPENDENCY: {
    message: 'module "{module}" used "{dependency}", which is not in its depends-on or optional-depends-on',
    status: 500,
  },
  NYALA_ERR_RESOURCE_NOT_FOUND: {
    message: 'module "{module}": resource "{entry}" is not in its bundle',
    status: 404,
  },
  NYALA_ERR_GENERATION_STOPPED: {
    message: 'module "{module}" generation {generation} has stopped: {what} refused',
    status: 500,
  },

  // request dispatch
  NYALA_ERR_NO_MODULE: { message: 'no module serves {path}', status: 404 },
  NYALA_ERR_MODULE_UNAVAILABLE: { message: 'module "{module}" is not running ({state})', status: 503 },
  NYALA_ERR_REQUEST_BLOCKED_TIMEOUT: {
    message:
      'module "{module}" is reloading (auto.reload.mode=blocking) and did not come back within auto.reload.block.timeout ({timeout} ms)',
    status: 503,
  },

  // HTTP upgrades (WebSockets), issue 15 part 5
  NYALA_ERR_UPGRADE_UNHANDLED: {
    message:
      'module "{module}" does not accept upgrades ({protocol}) for {path}: nothing in it listens for them; register a plugin that does, such as @fastify/websocket',
    status: 404,
  },

  // hot reload
  NYALA_ERR_BUNDLE_UNSETTLED: {
    message: '{bundle}: still not a complete zip after auto.reload.settle.timeout ({timeout} ms): {reason}',
    status: 422,
  },
  NYALA_ERR_NOT_RELOADABLE: {
    message: 'module "{module}" is not reloadable: {reason}',
    status: 409,
  },
  NYALA_ERR_RELOAD_COMMIT: {
    message: 'reload of "{module}" could not move {from} to {to}: {reason}',
    status: 500,
  },
  NYALA_ERR_UNKNOWN_MODULE: { message: 'no module named "{module}"; {hint}', status: 404 },
  NYALA_ERR_DEPLOY_WRITE: {
    message: '{file} cannot be placed in the staging directory {dir}: {reason}',
    status: 500,
  },
  NYALA_ERR_DEPLOY_PATH_INACTIVE: {
    message: '{file} is not picked up: the {type} deploy path is not active ({key}={value}); {hint}',
    status: 409,
  },
  NYALA_ERR_DEPLOY_SUPERSEDED: {
    message:
      'module "{module}" arrived by two deploy paths at once: {chosen} arrived last and is deployed; {other} is {outcome}',
    status: 409,
  },

  // thread isolation: a module in a worker thread of its own (issue 13 part 7, src/isolate/)
  NYALA_ERR_ISOLATED_DEPENDENCY: {
    message:
      'module "{module}" cannot {relation} module "{other}": "{isolated}" runs in a thread of its own (isolation=thread, or isolation.thread.modules), and an isolated module neither uses nor is used by another module',
    status: 409,
  },
  NYALA_ERR_MODULE_THREAD_EXITED: {
    message: 'the thread of module "{module}" (generation {generation}) ended: {reason}',
    status: 503,
  },
  NYALA_ERR_MODULE_THREAD_STALLED: {
    message:
      'the thread of module "{module}" (generation {generation}) did not answer for {limit} ms (isolation.thread.stall.ms): terminated',
    status: 503,
  },
  NYALA_ERR_MODULE_THREAD_PROXY: {
    message: 'module "{module}" (in its thread) could not answer {method} {path}: {reason}',
    status: 502,
  },
  NYALA_ERR_ISOLATED_UPGRADE: {
    message:
      'module "{module}" runs in a thread of its own: HTTP upgrades (WebSockets) to it are refused; expected a module without isolation=thread',
    status: 501,
  },
  NYALA_ERR_ISOLATED_BUNDLE_CHANGED: {
    message:
      "{bundle}: its content changed between the host's read (sha256 {expected}) and its module thread's (sha256 {found})",
    status: 409,
  },

  // admin API and the commands that talk to it
  NYALA_ERR_ADMIN_UNAUTHORIZED: {
    message: 'admin API: missing or wrong bearer token for {method} {path}',
    status: 401,
  },
  // admin API answers to malformed requests, found by fuzzing (issue 14 part 6)
  NYALA_ERR_ADMIN_NOT_FOUND: { message: 'admin API: no route {method} {path}', status: 404 },
  NYALA_ERR_ADMIN_REQUEST: {
    message: 'admin API: malformed request {method} {path}: {reason}',
    status: 400,
  },
  NYALA_ERR_ADMIN_INTERNAL: { message: 'admin API: {method} {path} failed: {reason}', status: 500 },
  // review of the console (issue 17): a token-less admin API refuses other sites' pages
  NYALA_ERR_ADMIN_FOREIGN_ORIGIN: {
    message:
      'admin API without admin.token: {method} {path} refused, its {header} header is "{value}", expected {expected} (a page of another site in a browser on this machine); set admin.token to reach the API by another name',
    status: 403,
  },
  NYALA_ERR_ADMIN_UNREACHABLE: { message: 'cannot reach the admin API at {url}: {reason}', status: 503 },
  NYALA_ERR_ADMIN_RESPONSE: { message: 'admin API at {url} answered {status}: {reason}', status: 502 },
  NYALA_ERR_ADMIN_TIMEOUT: {
    message:
      'the admin API at {url} did not answer within {seconds} s; the host may still be working on it (`nyala status` shows where it is)',
    status: 504,
  },

  // nyala deploy and the admin API's PUT /deploy/:file
  NYALA_ERR_DEPLOY_NAME: {
    message:
      '"{file}" cannot be deployed: {reason}; expected a file name (no directory part) ending in .zip or .jar, whose name gives a valid module name',
    status: 400,
  },
  NYALA_ERR_DEPLOY_BODY: {
    message:
      'PUT /deploy/{file}: expected the bundle as the request body (content-type application/octet-stream or application/zip), got {got}',
    status: 400,
  },
  NYALA_ERR_DEPLOY_NO_HOST: {
    message: 'placed {file}; no host is running at {url}: it is loaded when the host starts',
    status: 503,
  },
  NYALA_ERR_DEPLOY_TIMEOUT: {
    message:
      '{file} is still in the staging directory: no verdict for module "{module}" within {timeout} s. Most likely the host does not watch the staging directory: set auto.reload.modules=true and list stagingDirectory in auto.reload.monitoring.type (or reload.all / reload.modules do not select "{module}")',
    status: 504,
  },
  NYALA_ERR_DEPLOY_STREAM: {
    message: 'the admin API event stream at {url} ended before the verdict for module "{module}": {reason}',
    status: 502,
  },

  // process upgrade
  NYALA_ERR_PIDFILE_LIVE: {
    message:
      'pidfile {file} names pid {livePid}, which is running: another instance serves (replace it with "nyala upgrade")',
    status: 409,
  },
  NYALA_ERR_PIDFILE_STALE: {
    message: 'pidfile {file} names pid {deadPid}, which is not a running Nyala instance: replacing it',
    status: 500,
  },
  NYALA_ERR_PIDFILE_INVALID: { message: 'pidfile {file} holds no pid: "{content}"', status: 500 },
  NYALA_ERR_PIDFILE_WRITE: { message: 'cannot write pidfile {file}: {reason}', status: 500 },
  NYALA_ERR_FILE_SYSTEM: { message: 'cannot {syscall} {path}: {reason}', status: 500 },
  NYALA_ERR_NOT_RUNNING: { message: 'no running instance to upgrade: pidfile {file} {reason}', status: 409 },
  NYALA_ERR_NATIVE_MISSING: {
    message:
      'the descriptor-passing addon {file} cannot be loaded: {reason} (build it with "npm run build:native")',
    status: 500,
  },
  NYALA_ERR_DAEMONIZE: {
    message: 'the daemonized process (pid {daemonPid}) {reason}; its log is {log}',
    status: 500,
  },
  NYALA_ERR_UPGRADE_SOCKET: { message: 'upgrade socket {socket}: {reason}', status: 500 },
  NYALA_ERR_UPGRADE_NO_SUCCESSOR: {
    message: 'no successor answered on the upgrade socket {socket} within {timeout} ms: still serving',
    status: 503,
  },
  NYALA_ERR_UPGRADE_PEER: {
    message: 'upgrade socket {socket}: refused a peer (pid {peerPid}, uid {peerUid}): {reason}',
    status: 403,
  },
  NYALA_ERR_UPGRADE_PROTOCOL: { message: 'upgrade socket {socket}: {reason}', status: 400 },
  NYALA_ERR_UPGRADE_REFUSED: {
    message: 'the successor (pid {successor}) did not take the listeners: {reason}; still serving',
    status: 500,
  },
  NYALA_ERR_UPGRADE_MODULE_FAILED: {
    message:
      'module "{module}" serves in the running instance (pid {oldPid}) but failed to start here: {reason}',
    status: 500,
  },
  NYALA_ERR_UPGRADE_ADOPT: {
    message: 'cannot adopt the inherited listener(s) {name}: {reason}',
    status: 500,
  },
  NYALA_ERR_UPGRADE_WAIT_TIMEOUT: {
    message:
      'no running instance handed its listeners over on {socket} within upgrade.wait.timeout ({timeout} ms)',
    status: 504,
  },
  NYALA_ERR_UPGRADE_FAILED: { message: 'upgrade failed: {reason}', status: 500 },

  // the host's own crash: an uncaught error no module code is found in (issue 14 part 3)
  NYALA_ERR_HOST_CRASHED: {
    message: 'the host crashed ({origin} outside any module): {reason}',
    status: 500,
  },
  NYALA_ERR_HOST_CRASH_REPLACE: {
    message: 'the crashed host (pid {crashedPid}) could not be replaced: {reason}; exiting with code 1',
    status: 500,
  },
  NYALA_ERR_HOST_CRASH_LOOP: {
    message:
      'the host crashed again after {upgrades} replacement(s) within {window} s (host.crash.max.upgrades={max}): no further successor; exiting with code 1',
    status: 500,
  },
  // worker processes (workers > 1, src/cluster/)
  NYALA_ERR_WORKER_EXITED: {
    message: 'worker {worker} (pid {pid}) exited ({reason}){during}',
    status: 503,
  },
  NYALA_ERR_WORKER_START: {
    message: 'worker {worker} (pid {pid}) did not load the modules within {timeout} ms: {reason}',
    status: 503,
  },
  NYALA_ERR_WORKER_STALLED: {
    message:
      'worker {worker} (pid {pid}) has not answered for {ms} ms (watchdog.stall.ms={limit}): its event loop is stuck; starting a replacement, then killing it',
    status: 503,
  },
  NYALA_ERR_WORKER_SLOT_FAILED: {
    message:
      'worker {worker} was replaced {restarts} time(s) within {window} s (workers.restart.max={max}): the slot is left failed, {serving} worker(s) serve',
    status: 503,
  },
  NYALA_ERR_CLUSTER_PREPARE_TIMEOUT: {
    message:
      'worker {worker} (pid {pid}) did not answer PREPARE of reload {reload} within {timeout} ms (cluster.prepare.timeout): the reload is aborted in every worker',
    status: 503,
  },
  NYALA_ERR_CLUSTER_NO_WORKERS: {
    message: 'no worker process serves: {reason}',
    status: 503,
  },

  // nyala pack (module source directories with package.json) and nyala init
  NYALA_ERR_PACK_DEPENDENCY_MISSING: {
    message:
      '{dir}: production dependency "{package}" (needed by {by}) is not installed in {dir}/node_modules; run "npm install --omit=dev" (or "npm ci") in {dir}',
    status: 422,
  },
  NYALA_ERR_PACK_TOO_LARGE: {
    message:
      '{bundle}: the zipped content passes 4 GB at entry "{entry}"; a bundle is read whole into memory',
    status: 413,
  },
  NYALA_ERR_PACK_PACKAGE_JSON: { message: '{file}: cannot read package.json: {reason}', status: 422 },
  NYALA_ERR_INIT_NOT_EMPTY: {
    message:
      '{dir} is not an empty directory ({found}): nyala init writes only into a new or empty directory',
    status: 409,
  },
  NYALA_ERR_INIT_NAME: {
    message:
      'module name "{name}" is not valid: expected letters, digits, ".", "_" or "-", starting with a letter or digit (give one with --name)',
    status: 400,
  },
  // the watchdog (issue 14, part 4: a stuck event loop is seen)
  NYALA_ERR_EVENT_LOOP_STALL: {
    message:
      'the event loop has not turned for {ms} ms (watchdog.stall.ms={limit}): {running}; watchdog.action={action}',
    status: 500,
  },
  // crash-safe files (issue 14 part 5)
  NYALA_ERR_LEFTOVER_RECOVERY: {
    message: 'start-up recovery could not clean up {file}, left by an interrupted run: {reason}',
    status: 500,
  },
  NYALA_ERR_COMMIT_SYNC: {
    message:
      'reload of "{module}": the directory of its new bundle could not be flushed to the disk: {reason}; the new bundle serves, but a power cut may bring the previous one back',
    status: 500,
  },
} as const satisfies Record<string, Definition>

export type ErrorCode = keyof typeof definitions

/** The placeholder names of a message template, as a union of string literals. */
type Placeholders<S extends string> = S extends `${string}{${infer P}}${infer Rest}`
  ? P | Placeholders<Rest>
  : never

export type ErrorDetails<C extends ErrorCode> = {
  readonly [K in Placeholders<(typeof definitions)[C]['message']>]: string | number
}

/** All codes, for documentation checks and for `nyala --help`. */
export const errorCodes: readonly ErrorCode[] = Object.freeze(Object.keys(definitions) as ErrorCode[])

export class NyalaError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C
  readonly statusCode: number
  readonly details: Readonly<Record<string, string | number>>

  constructor(code: C, details: ErrorDetails<C>, options?: { cause?: unknown }) {
    const def: Definition = definitions[code]
    const fields = details as Record<string, string | number>
    super(
      def.message.replace(/\{(\w[\w.]*)\}/g, (_, k: string) => String(fields[k] ?? '')),
      options,
    )
    this.name = 'NyalaError'
    this.code = code
    this.statusCode = def.status
    this.details = Object.freeze({ ...fields })
  }

  /** A plain record for a log line or a JSON answer. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details }
  }
}

export function nyalaError<C extends ErrorCode>(
  code: C,
  details: ErrorDetails<C>,
  cause?: unknown,
): NyalaError<C> {
  return new NyalaError(code, details, cause === undefined ? undefined : { cause })
}

/** True for an error carrying a Nyala code, whichever copy of the class made it. */
export function isNyalaError(err: unknown): err is NyalaError {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { code?: unknown }).code === 'string' &&
    (err as { code: string }).code.startsWith('NYALA_ERR_')
  )
}

/** The message of anything thrown, for the `{reason}` of a wrapping error. */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
