/** The marker `withTimeout` resolves to when time ran out. */
export const timedOut: unique symbol = Symbol('timedOut')

/**
 * Resolves with the promise's value, or with `timedOut` after `ms`. The timer
 * is unref'd and cleared, so a finished race leaves nothing pending.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof timedOut> {
  let timer: NodeJS.Timeout | undefined
  const limit = new Promise<typeof timedOut>((resolve) => {
    timer = setTimeout(resolve, ms, timedOut)
    timer.unref()
  })
  try {
    return await Promise.race([promise, limit])
  } finally {
    clearTimeout(timer)
  }
}
