import type { Quote } from './quote.js'

export const all: readonly Quote[] = [
  { text: 'Simplicity is prerequisite for reliability.', by: 'Edsger W. Dijkstra' },
  { text: 'Make it work, make it right, make it fast.', by: 'Kent Beck' },
]
