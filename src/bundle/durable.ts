import { open } from 'node:fs/promises'

// What fsync on a directory may answer where directories cannot be opened or synced that way
// (Windows opens no directory handle for it: EISDIR / EPERM / EBADF; some file systems and FUSE
// mounts answer EINVAL / ENOTSUP; a directory we may write but not read: EACCES): the rename is
// then as durable as the platform makes it, nothing more.
const directorySyncUnsupported = new Set([
  'EISDIR',
  'EINVAL',
  'ENOTSUP',
  'EOPNOTSUPP',
  'EPERM',
  'EBADF',
  'EACCES',
])

// A file system that cannot sync at all (EINVAL: a pipe, some special mounts) gives no durability
// to lose; every other error (EIO above all) means the data may not be on disk and is thrown.
const fileSyncUnsupported = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP'])

/**
 * Flushes a file's data and metadata to the device (fsync), so a power cut
 * after a later rename cannot leave the new name pointing at empty or partial
 * content. Opened read-only: fsync flushes the inode whatever the descriptor's
 * mode, on Linux and macOS; where that is refused (EBADF, EPERM) it is opened
 * for writing instead, without changing it.
 */
export async function syncFile(file: string): Promise<void> {
  try {
    await syncOpened(file, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (fileSyncUnsupported.has(code)) return
    if (code !== 'EBADF' && code !== 'EPERM') throw err
    await syncOpened(file, 'r+').catch((again: NodeJS.ErrnoException) => {
      if (!fileSyncUnsupported.has(again.code ?? '')) throw again
    })
  }
}

/**
 * Flushes a directory's entries (fsync on the directory opened read-only), so
 * the renames, links and removals made in it survive a power cut. On platforms
 * where a directory cannot be opened or synced this way the error is ignored
 * (see `directorySyncUnsupported`): there is nothing more to ask for there.
 */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    await syncOpened(dir, 'r')
  } catch (err) {
    if (!directorySyncUnsupported.has((err as NodeJS.ErrnoException).code ?? '')) throw err
  }
}

async function syncOpened(file: string, flags: string): Promise<void> {
  const handle = await open(file, flags)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}
