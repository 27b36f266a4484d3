/**
 * Milliseconds on the system's monotonic clock (CLOCK_MONOTONIC on Linux):
 * the same clock in every process of the machine, never stepped by NTP, so
 * instants taken in a supervisor and in its workers compare directly. A
 * process's `performance.timeOrigin` is read from the wall clock at its start
 * and would carry any step between two starts into the comparison.
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}
