import type { BigIntStats } from 'node:fs'
import { stat } from 'node:fs/promises'

/** What identifies a file's content without reading it: a rename or rewrite changes it. */
export function stampOf(st: BigIntStats): string {
  return `${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}`
}

/** The stamp of `file` now (see `stampOf`); `gone` when it cannot be looked at. */
export async function fileStamp(file: string): Promise<string> {
  try {
    return stampOf(await stat(file, { bigint: true }))
  } catch {
    return 'gone'
  }
}
