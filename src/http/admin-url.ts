import path from 'node:path'
import type { HostOptions } from '../config/host-options.js'

/**
 * The file a running host writes its admin API URL to: beside the pidfile, so
 * `nyala status --root DIR` finds the API even when `admin.port=0` picked a port.
 */
export function adminUrlFileOf(options: HostOptions): string {
  return path.join(path.dirname(options.process.pidFile), 'admin.url')
}
