import { readFileSync, rmSync } from 'node:fs'
import path from 'node:path'
import type { HostOptions } from '../config/host-options.js'

/**
 * The file a running host writes its admin API URL to: beside the pidfile, so
 * `nyala status --root DIR` finds the API even when `admin.port=0` picked a port.
 */
export function adminUrlFileOf(options: HostOptions): string {
  return path.join(path.dirname(options.process.pidFile), 'admin.url')
}

/**
 * Removes the admin URL file when it still holds `url`, the one this process wrote: a stopped
 * host must not leave `nyala status` a stale address, and a successor that took the listeners
 * over (same URL) or another instance's file is left alone by the caller's rules and this check.
 */
export function removeAdminUrl(file: string, url: string): void {
  try {
    if (readFileSync(file, 'utf8').trim() === url) rmSync(file, { force: true })
  } catch {
    // gone or unreadable: nothing of ours to remove
  }
}
