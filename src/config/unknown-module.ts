import { type NyalaError, nyalaError } from '../errors.js'
import { namesHint } from './closest.js'

/**
 * `NYALA_ERR_UNKNOWN_MODULE` for `name`, with what helps the reader fix it: the close name, or
 * the modules there are (the admin API and `nyala reload` say it alike).
 */
export const unknownModule = (name: string, known: Iterable<string>): NyalaError =>
  nyalaError('NYALA_ERR_UNKNOWN_MODULE', {
    module: name,
    hint: namesHint(name, [...known], '`nyala status`'),
  })
