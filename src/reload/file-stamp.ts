import type { BigIntStats } from 'node:fs'
import { stat } from 'node:fs/promises'

export interface StampOptions {
  /**
   * Include the change time. Without it the stamp survives a rename of the file itself (which
   * changes its ctime), so a commit can tell the file it checked from another under its name.
   * @default true
   */
  readonly ctime?: boolean
}

/** What identifies a file's content without reading it: a rename or rewrite changes it. */
export function stampOf(st: BigIntStats, { ctime = true }: StampOptions = {}): string {
  return ctime ? `${st.ino}:${st.size}:${st.ctimeNs}:${st.mtimeNs}` : `${st.ino}:${st.size}:${st.mtimeNs}`
}

/** The stamp of `file` now (see `stampOf`); `gone` when it cannot be looked at. */
export async function fileStamp(file: string, options?: StampOptions): Promise<string> {
  try {
    return stampOf(await stat(file, { bigint: true }), options)
  } catch {
    return 'gone'
  }
}
