import { realpathSync } from 'node:fs'
import { readFile, stat } from 'node:fs/promises'
import path from 'node:path'
import { type Bundle, openBundle } from '../bundle/open-bundle.js'
import { placeDeploy, removeIfSame, stagedModuleName } from '../bundle/staged-file.js'
import { currentTrustPolicy, type TrustPolicy } from '../bundle/trust-store.js'
import { type HostOptions, loadHostOptions } from '../config/host-options.js'
import { isNyalaError, type NyalaError, nyalaError, reasonOf } from '../errors.js'
import { checkSyntax } from '../loader/load-module.js'
import type { ReloadEvent } from '../reload/reload-events.js'
import { type AdminTarget, adminFlags, callAdmin, findAdmin, refuseRootWithAdmin } from './admin-client.js'
import { answeredAsJson, exitCodes, parse, UsageError } from './common.js'
import { type EventStream, openEventStream } from './event-stream.js'

const deployHelp = `Usage: nyala deploy <bundle> [options]

Validates a bundle (.zip or .jar) with the host's own checks (zip, manifest,
main file, syntax), places it in the staging directory atomically (a hidden
temporary name, then a rename) and waits for the running host's verdict on its
admin API event stream: prints the modules reloaded, their new generations and
the time taken. A bundle the host refuses is removed from staging again (the
running generation keeps serving). The host must watch the staging directory:
auto.reload.modules=true and stagingDirectory in auto.reload.monitoring.type.

Options:
  --root DIR       root of the host to deploy to (default: .)
  --config FILE    its configuration file
                   (default: <root>/config/impala.properties)
  --admin URL      deploy through a host's admin API instead
                   (PUT /deploy/<file>), possibly on another machine; nothing
                   is read from a root
  --token T        admin.token (default: NYALA_ADMIN_TOKEN, else the root's
                   configuration's; with --admin, NYALA_ADMIN_TOKEN only)
  --dry-run        validate only; print what would be deployed
  --timeout S      seconds to wait for the verdict (default: 60)
  --no-wait        place the bundle and exit without waiting for the verdict
  --json           print one JSON object with the verdict
  -h, --help       show this help

Exit codes: 0 deployed, unchanged, validated (--dry-run) or placed (--no-wait);
1 refused (locally or by the host; the error code is printed), set aside by the
host for a newer file of the module (NYALA_ERR_DEPLOY_SUPERSEDED), no verdict
within --timeout, or no host running (the bundle stays placed and is loaded when
the host starts); 2 usage error.`

/** The longest wait a timer can hold (2^31 - 1 ms), in whole seconds. */
const maxTimeoutS = Math.floor((2 ** 31 - 1) / 1000)

const flags = {
  ...adminFlags,
  'dry-run': { type: 'boolean' },
  timeout: { type: 'string' },
  'no-wait': { type: 'boolean' },
} as const

/** What was checked locally, as printed by every outcome. */
interface Checked {
  readonly file: string
  readonly module: string
  readonly version: string
  readonly prefix: string
  readonly hash: string
  readonly files: number
}

type Values = Record<string, string | boolean | undefined>

function summaryOf(bundle: Bundle, file: string): Checked {
  const { version, prefix } = bundle.manifest
  return { file, module: bundle.name, version, prefix, hash: bundle.hash, files: bundle.files.size }
}

/** Prints the outcome: the JSON object with `--json`, else the human line. */
function say(values: Values, json: Record<string, unknown>, line: string, toStderr = false): void {
  if (values.json) process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
  else (toStderr ? process.stderr : process.stdout).write(`${line}\n`)
}

/** Reports an error (also as JSON with `--json`) and returns it for `throw`. */
function refused(values: Values, json: Record<string, unknown>, err: NyalaError): NyalaError {
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...json, error: { code: err.code, message: err.message } }, null, 2)}\n`,
    )
    answeredAsJson.add(err)
  }
  return err
}

/** The host's own checks, before anything is written: file name, zip, manifest, main, signature, syntax. */
async function validate(
  file: string,
  maxBytes: number | undefined,
  trust: TrustPolicy | undefined,
): Promise<{ bundle: Bundle; data: Buffer }> {
  const base = path.basename(file)
  let isDirectory = false
  try {
    isDirectory = (await stat(file)).isDirectory()
  } catch {
    // openBundle names the unreadable file
  }
  if (isDirectory)
    throw nyalaError('NYALA_ERR_DEPLOY_NAME', {
      file,
      reason: 'it is a directory (pack it first: nyala pack)',
    })
  stagedModuleName(base)
  let data: Buffer
  try {
    data = await readFile(file)
  } catch (err) {
    throw nyalaError('NYALA_ERR_BUNDLE_READ', { bundle: file, reason: reasonOf(err) }, err)
  }
  // the root's trust policy too, when there is a root: a bundle its host would refuse is not placed
  const bundle = await openBundle(file, { data, ...(maxBytes ? { maxBytes } : {}), trust })
  checkSyntax(bundle)
  return { bundle, data }
}

/**
 * The event that decides a deploy of `module` from the placed file: the end (swapped, unchanged
 * or failed) of the reload whose `start` named that file with this bundle's content (`hash`), or
 * that file set aside for a newer one (`superseded`). Another reload of the module ending
 * meanwhile (an older `.tmp` checked again, a forced reload, another copy of the module that
 * landed under the same name while this one was written) is not this deploy's answer. A start
 * without the content's hash (a file the host could not open) is matched by its name alone.
 * Events come in order, so the start is seen first.
 */
function verdictFor(
  module: string,
  isPlaced: (file: string) => boolean,
  hash: string,
): (e: ReloadEvent) => boolean {
  const ours = new Set<number>()
  return (e) => {
    const file = e.files?.[module]
    const content = e.hashes?.[module]
    if (
      e.phase === 'start' &&
      file !== undefined &&
      isPlaced(file) &&
      (content === undefined || content === hash)
    )
      ours.add(e.id)
    if (e.phase === 'superseded') return file !== undefined && isPlaced(file)
    return ours.has(e.id) && (e.phase === 'swapped' || e.phase === 'unchanged' || e.phase === 'failed')
  }
}

/**
 * Whether the host's name for a file is `placed`. Through the admin API the host named the
 * placed file itself; on a local root the host may reach the staging directory by another
 * spelling (a relative root, a symbolic link), so directories are compared by their real paths.
 */
function placedMatcher(placed: string, local: boolean): (file: string) => boolean {
  if (!local) return (file) => file === placed
  const realDir = (file: string) => {
    try {
      return realpathSync(path.dirname(file))
    } catch {
      return path.resolve(path.dirname(file))
    }
  }
  const dir = realDir(placed)
  const base = path.basename(placed)
  return (file) => path.basename(file) === base && realDir(file) === dir
}

/** Where the file went, for the user: relative to the working directory when inside it. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file)
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file
}

export async function deploy(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, flags)
  if (values.help) {
    process.stdout.write(`${deployHelp}\n`)
    return exitCodes.ok
  }
  if (positionals.length !== 1) throw new UsageError('deploy takes one bundle file')
  const remote = typeof values.admin === 'string'
  refuseRootWithAdmin(values)
  const timeoutS = values.timeout === undefined ? 60 : Number(values.timeout)
  // a timer holds at most 2^31 - 1 ms: beyond it Node fires at once, every millisecond, warning each time
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > maxTimeoutS)
    throw new UsageError(
      `--timeout must be a number of seconds above 0 and at most ${maxTimeoutS} (24 days), got "${values.timeout}"`,
    )

  const file = path.resolve(positionals[0]!)
  let options: HostOptions | undefined
  if (!remote) {
    try {
      options = loadHostOptions({
        root: values.root as string | undefined,
        config: values.config as string | undefined,
      }).options
    } catch (err) {
      // a dry run validates the bundle alone: a root it cannot read only loses the target line
      if (!values['dry-run']) throw err
    }
  }
  let checked: Checked
  let data: Buffer
  try {
    const valid = await validate(
      file,
      options?.bundleMaxBytes,
      options && currentTrustPolicy(options.signature),
    )
    checked = summaryOf(valid.bundle, path.basename(file))
    data = valid.data
  } catch (err) {
    if (isNyalaError(err)) throw refused(values, { result: 'refused', file }, err)
    throw err
  }
  const what = `${checked.module} ${checked.version}`

  if (values['dry-run']) {
    const into = options ? path.join(options.autoReload.stagingDir, checked.file) : undefined
    say(
      values,
      { result: 'valid', ...checked, ...(into ? { target: into } : {}) },
      `valid: ${what} (prefix ${checked.prefix}, ${checked.files} files, sha256 ${checked.hash})` +
        (into ? `\nwould be placed in ${shown(into)}` : ''),
    )
    return exitCodes.ok
  }

  const target = findAdmin(values)
  // subscribe before placing, so the verdict cannot come before the stream is open
  let stream: EventStream | undefined
  let unreachable: NyalaError | undefined
  if (!(remote && values['no-wait'])) {
    try {
      stream = await openEventStream(target)
    } catch (err) {
      const gone = isNyalaError(err) && err.code === 'NYALA_ERR_ADMIN_UNREACHABLE'
      // --no-wait places the file whatever the admin API says (it only tells whether a host runs)
      if (remote || !(gone || (values['no-wait'] && isNyalaError(err)))) throw err
      if (gone) unreachable = err
    }
  }
  try {
    return await placeAndWait({ values, checked, data, target, options, stream, unreachable, timeoutS })
  } finally {
    stream?.close()
  }
}

/** A validated bundle on its way: where it goes (a root's staging, or an admin API) and how to wait. */
interface Delivery {
  readonly values: Values
  readonly checked: Checked
  readonly data: Buffer
  readonly target: AdminTarget
  /** The root's options; `undefined` for `--admin URL`. */
  readonly options: HostOptions | undefined
  readonly stream: EventStream | undefined
  /** Why no event stream could be opened: no host is running. */
  readonly unreachable: NyalaError | undefined
  readonly timeoutS: number
}

async function placeAndWait(delivery: Delivery): Promise<number> {
  const { values, checked, data, target, options, stream, unreachable, timeoutS } = delivery
  const what = `${checked.module} ${checked.version}`
  const t0 = performance.now()
  let placed: string
  if (options) {
    placed = await placeDeploy(options.autoReload.stagingDir, checked.file, data, {
      sync: options.autoReload.fsync,
    })
  } else {
    const { status, body } = await callAdmin(
      target,
      'PUT',
      `/deploy/${encodeURIComponent(checked.file)}`,
      data,
    )
    if (status !== 202)
      throw isNyalaError(body)
        ? body
        : nyalaError('NYALA_ERR_ADMIN_RESPONSE', { url: target.url, status, reason: JSON.stringify(body) })
    placed = String(body.file)
  }
  const where = options ? shown(placed) : `${placed} on ${target.url}`
  const base = { ...checked, placed }

  if (unreachable) {
    const err = nyalaError('NYALA_ERR_DEPLOY_NO_HOST', { file: where, url: target.url })
    if (!values['no-wait']) throw refused(values, { result: 'placed', host: false, ...base }, err)
    say(values, { result: 'placed', host: false, ...base }, err.message)
    return exitCodes.ok
  }
  if (!stream || values['no-wait']) {
    say(
      values,
      { result: 'placed', host: true, ...base },
      `placed ${where} (${what}); not waiting for the verdict`,
    )
    return exitCodes.ok
  }

  const outcome = await stream.waitFor(
    verdictFor(checked.module, placedMatcher(placed, options !== undefined), checked.hash),
    timeoutS * 1000,
  )
  const ms = Math.round(performance.now() - t0)
  if ('timeout' in outcome) {
    const err = nyalaError('NYALA_ERR_DEPLOY_TIMEOUT', {
      file: where,
      module: checked.module,
      timeout: timeoutS,
    })
    throw refused(values, { result: 'timeout', ...base }, err)
  }
  if ('ended' in outcome) {
    const err = nyalaError('NYALA_ERR_DEPLOY_STREAM', {
      url: target.url,
      module: checked.module,
      reason: outcome.ended,
    })
    throw refused(values, { result: 'unknown', ...base }, err)
  }
  const { event } = outcome
  if (event.phase === 'swapped') {
    const generations = event.generations ?? {}
    const gens = Object.entries(generations)
      .map(([m, g]) => `${m}@${g}`)
      .join(' ')
    const count = event.modules.length
    say(
      values,
      { result: 'deployed', ...base, modules: event.modules, generations, ms, reloadMs: event.ms },
      `deployed ${what}: ${gens} (${count} module${count === 1 ? '' : 's'}) in ${ms} ms`,
    )
    return exitCodes.ok
  }
  if (event.phase === 'unchanged') {
    say(
      values,
      { result: 'unchanged', ...base, ms },
      `unchanged: ${what} is the content that runs; nothing reloaded`,
    )
    return exitCodes.ok
  }
  if (event.phase === 'superseded') {
    // set aside by the host, not deleted: the newer file of the module is what it deploys
    const error = event.error ?? { code: 'NYALA_ERR_DEPLOY_SUPERSEDED', message: 'set aside' }
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ result: 'superseded', ...base, module: checked.module, error, ms }, null, 2)}\n`,
      )
    process.stderr.write(`nyala: ${error.code}: ${error.message}\n`)
    process.stderr.write(`${what} was not deployed: a newer file of ${checked.module} arrived meanwhile\n`)
    return exitCodes.failure
  }
  // refused by the host: the old generation keeps serving; leave staging as it was before
  const error = event.error ?? { code: 'NYALA_ERR_RELOAD_COMMIT', message: 'the host reported a failure' }
  const removed = options
    ? await removeIfSame(placed, checked.hash)
    : (
        await callAdmin(
          target,
          'DELETE',
          `/deploy/${encodeURIComponent(checked.file)}?sha256=${checked.hash}`,
        )
      ).body.removed === true
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ result: 'failed', ...base, module: event.module ?? checked.module, error, removed, ms }, null, 2)}\n`,
    )
  }
  process.stderr.write(`nyala: ${error.code}: ${error.message}\n`)
  process.stderr.write(
    removed
      ? `removed ${where} again: the host refused it and keeps serving the running generation\n`
      : `the host refused ${what} and keeps serving the running generation; ${where} no longer holds what deploy placed (gone or replaced since) and is left as it is\n`,
  )
  return exitCodes.failure
}
