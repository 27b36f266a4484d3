import { readFileSync } from 'node:fs'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { moduleNamePattern } from '../bundle/module-name.js'
import { nyalaError } from '../errors.js'
import { exitCodes, parse, UsageError, version } from './common.js'
import { scaffold } from './init-templates.js'

const initHelp = `Usage: nyala init <dir> [--typescript] [--name NAME]

Writes a new module into <dir> (created if needed; it must be empty):
module.properties, package.json, a register with one route (GET /<name>),
a test (node:test with Fastify's inject and nyala's createTestContext),
.gitignore and .nyalaignore. Then: cd <dir> && npm install && npm test.

Options:
      --typescript   index.ts, typed with
                     import type { NyalaModule } from 'nyala',
                     tsconfig.json and "npm run typecheck"
  -n, --name NAME    module name (default: the directory's name)
  -h, --help         show this help`

/** The installed nyala package (dist/cli/ is two levels down). */
const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')

export async function init(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    typescript: { type: 'boolean' },
    name: { type: 'string', short: 'n' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help) {
    process.stdout.write(`${initHelp}\n`)
    return exitCodes.ok
  }
  const [dirArg, ...rest] = positionals
  if (!dirArg || rest.length > 0)
    throw new UsageError('init takes one directory: nyala init <dir> [--typescript]')
  const dir = path.resolve(dirArg)
  const name = (values.name as string | undefined) ?? path.basename(dir)
  if (!moduleNamePattern.test(name)) throw nyalaError('NYALA_ERR_INIT_NAME', { name })
  await refuseNonEmpty(dir)
  const typescript = values.typescript === true
  const files = scaffold({ name, typescript, versions: versions() })
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true })
    // 'wx': never overwrite, even if something appeared since the check
    await writeFile(path.join(dir, file), content, { flag: 'wx' })
  }
  process.stdout.write(
    `${dir}: ${typescript ? 'TypeScript' : 'JavaScript'} module ${name} (${Object.keys(files).sort().join(', ')})\n` +
      `next: cd ${path.relative(process.cwd(), dir) || '.'} && npm install && npm test && npm run pack\n`,
  )
  return exitCodes.ok
}

async function refuseNonEmpty(dir: string): Promise<void> {
  let isDirectory: boolean
  try {
    isDirectory = (await stat(dir)).isDirectory()
  } catch {
    return // does not exist yet
  }
  const first = isDirectory ? (await readdir(dir)).sort()[0] : undefined
  if (!isDirectory) throw nyalaError('NYALA_ERR_INIT_NOT_EMPTY', { dir, found: 'it is a file' })
  if (first !== undefined) throw nyalaError('NYALA_ERR_INIT_NOT_EMPTY', { dir, found: `it holds "${first}"` })
}

/**
 * The scaffold's package.json ranges: the host's own Fastify and TypeScript (a module is built
 * against what runs it), and nyala itself: the published version when this nyala was installed
 * as a package, else (a checkout) a `file:` link to it, since that version is not published.
 */
function versions() {
  const own = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>
    devDependencies?: Record<string, string>
  }
  const installed = packageRoot.split(path.sep).includes('node_modules')
  return {
    fastify: own.dependencies.fastify ?? '^5.0.0',
    typescript: own.devDependencies?.typescript ?? '^5.8.0',
    typesNode: own.devDependencies?.['@types/node'] ?? '^20.19.0',
    nyala: installed ? `^${version}` : `file:${packageRoot}`,
  }
}
