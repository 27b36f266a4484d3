import { stat } from 'node:fs/promises'

/** Whether `file` is a directory (following a symbolic link); false when it cannot be looked at. */
export async function isDirectory(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isDirectory()
  } catch {
    return false
  }
}
