#!/usr/bin/env node
// Before anything else, so its first nextTick entry is kept (why: src/http/tick-shape.ts).
import './http/tick-shape.js'
// Fastify next: measured in bench/dispatch.js, loading jszip (and its stream
// polyfills) before Fastify left request handling ~15% slower for the life of
// the process; most likely the nextTick maps that tick-shape.ts now keeps.
import 'fastify'
import { answeredAsJson, exitCodes, UsageError, version } from './cli/common.js'
import { deploy } from './cli/deploy.js'
import { init } from './cli/init.js'
import { keygen } from './cli/keygen.js'
import { pack } from './cli/pack.js'
import { reload } from './cli/reload.js'
import { start } from './cli/start.js'
import { status } from './cli/status.js'
import { upgrade } from './cli/upgrade.js'
import { verifyCommand } from './cli/verify.js'
import { isNyalaError, nyalaError } from './errors.js'

export { exitCodes }

const mainHelp = `nyala ${version}: a plugin-module host with hot module reload

Usage: nyala <command> [options]

Commands:
  start          load the bundles of modules/ and serve them
  init <dir>     write a new module (--typescript for TypeScript)
  pack <dir>     pack a module directory into a bundle (zip), with its
                 production packages
  status         print the modules of a running host (admin API)
  reload [name]  reload one module and its dependents, or rescan everything
  deploy <file>  validate a bundle, place it in staging and wait for the host's
                 verdict
  keygen         write an Ed25519 key pair for signing bundles
  verify <file>  check a bundle's signatures against a root's trusted keys
  upgrade        replace the running instance with a new process (no refused
                 connection)

Options:
  -h, --help     show help (also: nyala <command> --help)
  -v, --version  print the version

Exit codes: 0 success, 1 failure (bad configuration, cannot listen, bad bundle),
2 usage error, 3 the event loop was stuck (watchdog.action=exit).
Error codes (NYALA_ERR_*) are listed in docs/errors.md.`

const commands: Record<string, (args: string[]) => Promise<number>> = {
  start,
  init,
  pack,
  status,
  reload,
  deploy,
  upgrade,
  keygen,
  verify: verifyCommand,
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv
  try {
    const run = command === undefined ? undefined : commands[command]
    if (run) return await run(args)
    switch (command) {
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
      if (args.includes('--json')) printJsonError(usage)
      const help = command !== undefined && commands[command] ? `nyala ${command} --help` : 'nyala --help'
      process.stderr.write(`nyala: ${usage.code}: ${usage.message}\nRun "${help}" for usage.\n`)
      return exitCodes.usage
    }
    const known = isNyalaError(err) ? err : fileSystemError(err)
    if (known) {
      // --json promises JSON on stdout: an error the command did not answer as JSON itself
      if (args.includes('--json') && !answeredAsJson.has(known)) printJsonError(known)
      process.stderr.write(`nyala: ${known.code}: ${known.message}\n`)
      return exitCodes.failure
    }
    throw err
  }
}

/** A file the command could not read or write (Node's system error): said with its path and reason, not as a crash. */
function fileSystemError(err: unknown) {
  const e = err as NodeJS.ErrnoException
  if (!(err instanceof Error) || typeof e.code !== 'string' || typeof e.syscall !== 'string') return undefined
  return nyalaError(
    'NYALA_ERR_FILE_SYSTEM',
    { syscall: e.syscall, path: e.path ?? '(no path)', reason: e.message },
    err,
  )
}

/** An error as a `--json` run's answer: `{ "result": "error", code, message, ... }`. */
function printJsonError(err: object): void {
  const fields =
    typeof (err as { toJSON?: unknown }).toJSON === 'function' ? (err as { toJSON(): object }).toJSON() : err
  process.stdout.write(`${JSON.stringify({ result: 'error', ...fields }, null, 2)}\n`)
}

// The event loop emptied while the command still awaited something nothing will settle
// (an unref'd handle's promise, say): Node would end the process with code 0 and no word,
// and a caller (nyala upgrade, a process manager) would read success. Say so and fail.
const unfinished = () => {
  process.stderr.write(
    'nyala: internal error: the command stopped before it finished (nothing left to wait on)\n',
  )
  process.exit(exitCodes.failure)
}
process.once('beforeExit', unfinished)
main(process.argv.slice(2)).then(
  (code) => {
    process.off('beforeExit', unfinished)
    // module code may leave handles open (sockets, timers outside ctx): do not hang on exit
    process.exitCode = code
    setImmediate(() => process.exit(code))
  },
  (err: unknown) => {
    process.off('beforeExit', unfinished)
    process.stderr.write(`nyala: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exit(exitCodes.failure)
  },
)
