import { readFile } from 'node:fs/promises'
import path from 'node:path'
import ignore, { type Ignore } from 'ignore'

/**
 * What `nyala pack` leaves out of a module's own files (not of its dependencies), in gitignore
 * syntax. A `.nyalaignore` beside module.properties adds lines after these, so `!tests/` there
 * puts a test folder back. Dot-entries go (`.git`, `.env`, editor files): a deployed bundle has
 * no use for them and `.env` may hold secrets. Tests and coverage are not run by the host.
 * Lockfiles only matter to `npm install`, which a bundle never sees. Source maps stay: stack
 * traces of transformed code need them.
 */
export const defaultPackExcludes: readonly string[] = Object.freeze([
  '.*',
  'test/',
  'tests/',
  '__tests__/',
  '__mocks__/',
  'coverage/',
  '*.test.*',
  '*.spec.*',
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
])

/** Entries of the module's own files that are always packed, whatever the rules say. */
const alwaysPacked = new Set(['module.properties', 'package.json'])

/** Decides, for a path relative to the module directory, whether `nyala pack` takes it. */
export interface PackRules {
  /** False: the directory is left out whole (not walked). */
  takesDirectory(entry: string): boolean
  takesFile(entry: string): boolean
}

/**
 * The rules for one module directory: the defaults above, then `.nyalaignore`; and, when
 * package.json has a `files` array, only what it names (as npm does for `npm publish`,
 * gitignore syntax: a folder takes its contents). module.properties, package.json and the
 * main file are always taken.
 */
export async function packRules(
  dir: string,
  main: string,
  files: readonly string[] | undefined,
): Promise<PackRules> {
  const excludes = ignore().add([...defaultPackExcludes])
  const own = await readFile(path.join(dir, '.nyalaignore'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return ''
    throw err
  })
  excludes.add(own)
  // npm takes `./lib` for `lib`; gitignore syntax does not
  const listed: Ignore | undefined = files
    ? ignore().add(files.map((f) => f.replace(/^\.\//, '')))
    : undefined
  const always = new Set([...alwaysPacked, main])
  return {
    // the main file's folders are walked even when a rule leaves the rest of them out
    takesDirectory: (entry) => main.startsWith(`${entry}/`) || !excludes.ignores(`${entry}/`),
    takesFile: (entry) => {
      if (always.has(entry)) return true
      if (excludes.ignores(entry)) return false
      return listed ? listed.ignores(entry) : true
    },
  }
}
