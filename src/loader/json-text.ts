/**
 * `JSON.parse` as Node reads JSON files (`require`, JSON imports, package.json): past a
 * leading byte order mark, which is not JSON.
 */
export const parseJsonText = (text: string): unknown =>
  JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)
