import fresh from 'fresh';

/**
 * RFC 9110 If-None-Match (weak comparison, lists, `*`) against a response's ETag, by the `fresh`
 * of Express and Koa. Only that header: `fresh` also answers "changed" to any Cache-Control:
 * no-cache, which the fetch standard adds to every request carrying If-None-Match; that directive
 * is for caches on the way, while this server is where the validation it asks for happens.
 */
export function matchesIfNoneMatch(ifNoneMatch: string | string[] | undefined, etag: string): boolean {
  return fresh({ 'if-none-match': Array.isArray(ifNoneMatch) ? ifNoneMatch.join(', ') : ifNoneMatch }, { etag });
}
