import { existsSync, statSync } from 'node:fs'
import { openBundle } from '../bundle/open-bundle.js'
import { packDirectory } from '../bundle/pack.js'
import { nyalaError } from '../errors.js'
import { exitCodes, parse, UsageError } from './common.js'

const packHelp = `Usage: nyala pack <dir> [-o out.zip]

Packs a module source directory (with module.properties at its root) into a
bundle. The bundle is validated after packing, as the host would open it.

Options:
  -o, --out FILE   output file (default: <dir>.zip)
  -h, --help       show this help`

export async function pack(args: string[]): Promise<number> {
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
