import { chmod, link, mkdir, readdir, rm, rmdir, unlink, writeFile } from 'node:fs/promises'
import path from 'node:path'

// enough to keep the disk busy; each write is a few thread-pool round trips
const writeConcurrency = 16
const empty = Buffer.alloc(0)

/** A tree written earlier and the bytes of its files: a file with the same bytes is linked, not written. */
export interface TreeSource {
  readonly dir: string
  readonly files: ReadonlyMap<string, Buffer>
}

/**
 * Writes `files` (safe relative entry paths, as a bundle holds them) under
 * `dir`, which must not exist, then makes the whole tree read-only: files
 * 0444, directories 0555. Writing happens on libuv's thread pool, a bounded
 * number of files at a time, so the event loop keeps serving. A file whose
 * bytes equal its namesake in `reuse` (the previous content of the same
 * module: a reload usually changes a few files of thousands) is hard-linked
 * to it, one system call instead of three and no data written; both are
 * read-only, so sharing the inode is safe.
 */
export async function writeReadOnlyTree(
  dir: string,
  files: ReadonlyMap<string, Buffer>,
  reuse?: TreeSource,
): Promise<void> {
  await mkdir(dir, { recursive: false })
  const dirs = new Set<string>([dir])
  const entries = [...files]
  let next = 0
  const writer = async () => {
    while (next < entries.length) {
      const [entry, content] = entries[next++]!
      const file = path.join(dir, entry)
      const parent = path.dirname(file)
      if (!dirs.has(parent)) {
        await mkdir(parent, { recursive: true })
        for (let d = parent; d !== dir && !dirs.has(d); d = path.dirname(d)) dirs.add(d)
      }
      if (reuse && content.equals(reuse.files.get(entry) ?? empty)) {
        const linked = await link(path.join(reuse.dir, entry), file).then(
          () => true,
          () => false, // its directory was removed meanwhile: written instead
        )
        if (linked) continue
      }
      await writeFile(file, content, { mode: 0o444, flag: 'wx' })
    }
  }
  await Promise.all(Array.from({ length: Math.min(writeConcurrency, entries.length) }, writer))
  // deepest first: a directory made read-only first could not take its children's mode change
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) await chmod(d, 0o555)
}

/** Removes a tree written by `writeReadOnlyTree`: its directories are made writable first (not needed by root). */
export async function removeTree(dir: string): Promise<void> {
  await makeWritable(dir).catch(() => {})
  await rm(dir, { recursive: true, force: true, maxRetries: 3 })
}

async function makeWritable(dir: string): Promise<void> {
  await chmod(dir, 0o755)
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await makeWritable(path.join(dir, e.name))
  }
}

/**
 * Removes a tree written by `writeReadOnlyTree` from `files`, its entry paths: its directories
 * made writable, each file unlinked, the directories removed deepest first. It does not list or
 * `lstat` anything, as `rm` does for every entry (a small bundle's directory: five file-system
 * calls instead of a dozen, each a round trip through the serving thread). Anything it does not
 * expect (a file it does not know of) ends in `removeTree`.
 */
export async function removeWrittenTree(dir: string, files: readonly string[]): Promise<void> {
  const dirs = new Set<string>([dir])
  for (const entry of files) {
    for (let d = path.dirname(path.join(dir, entry)); d !== dir && !dirs.has(d); d = path.dirname(d))
      dirs.add(d)
  }
  try {
    for (const d of dirs) await chmod(d, 0o755)
    let next = 0
    const remover = async () => {
      while (next < files.length) {
        await unlink(path.join(dir, files[next++]!)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err
        })
      }
    }
    await Promise.all(Array.from({ length: Math.min(writeConcurrency, files.length) }, remover))
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) await rmdir(d)
  } catch {
    await removeTree(dir)
  }
}
