/** The marker `withTimeout` resolves to when time ran out. */
export const timedOut: unique symbol = Symbol('timedOut')

/**
 * Resolves with the promise's value, or with `timedOut` after `ms`. The timer
 * is not unref'd: during start-up it may be the only thing keeping the process
 * alive while a module's register waits; it is cleared when the race ends.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(resolve, ms, timedOut)
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}
