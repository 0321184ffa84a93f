import { createServer, Socket, type Server } from 'node:net';

// A TCP relay in front of a real server that resets the first N connections it accepts (after
// their first bytes arrive, as a load balancer or a restarting server does) and relays the rest
// byte for byte. It speaks no protocol: what the client sees is a connection reset, then the real
// server's answers, which is what a transient network fault looks like to an S3 client.

export interface FaultProxy {
  readonly endpoint: string;
  /** Connections accepted so far (reset ones included). */
  readonly connections: number;
  /** Resets the next `count` connections. */
  resetNext(count: number): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let toReset = 0;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    connections += 1;
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    if (toReset > 0) {
      toReset -= 1;
      client.once('data', () => client.resetAndDestroy());
      return;
    }
    const upstream = new Socket();
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.connect(targetPort, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    get connections() {
      return connections;
    },
    resetNext(count) {
      toReset = count;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
