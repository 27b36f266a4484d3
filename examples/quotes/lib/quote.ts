import { all } from './all.js'

export interface Quote {
  readonly text: string
  readonly by: string
}

export function pick(n: number): Quote {
  const quote = all[Math.abs(Math.trunc(n)) % all.length]
  if (!quote) throw new Error(`no quote ${n}`)
  return quote
}
