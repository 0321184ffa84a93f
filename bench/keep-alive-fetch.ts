import http from 'node:http';

// A fetch for the benchmarks' measured requests, over node:http on kept-alive connections: the
// client shares this machine's two cores with the service, and undici's fetch costs several times
// the CPU per request and per SSE chunk, which would be counted as the service's overhead. The
// benchmarks hand it to packages/client, so they call the API the way integrators do. It reads a
// response whole before resolving, which is all a benchmark that waits for a job's end needs.

const agent = new http.Agent({ keepAlive: true });

/** Statuses whose responses have no body (a Response refuses one). */
const NO_BODY = new Set([101, 204, 205, 304]);

export async function keepAliveFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const request = new Request(input, init);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
  return new Promise((resolve, reject) => {
    const req = http.request(request.url, { method: request.method, agent, headers: Object.fromEntries(request.headers) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
        const status = res.statusCode ?? 0;
        resolve(new Response(NO_BODY.has(status) ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers }));
      });
    });
    req.on('error', reject);
    request.signal.addEventListener('abort', () => req.destroy(request.signal.reason as Error), { once: true });
    req.end(body);
  });
}
