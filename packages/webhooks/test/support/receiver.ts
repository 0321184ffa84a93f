import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// A real HTTP receiver on loopback for the webhook tests: it records what it is sent and answers
// as the test says (a status, or never).

export interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  path: string;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** How it answers the next requests: a status code, or 'hang' (never answers). */
  answer: number | 'hang';
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const received: Received[] = [];
  const receiver = { received, answer: 204 as number | 'hang' } as Receiver;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8'), path: request.url ?? '' });
      if (receiver.answer === 'hang') return;
      if (receiver.answer >= 300 && receiver.answer < 400) response.setHeader('location', '/elsewhere');
      response.statusCode = receiver.answer;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: bound } = server.address() as AddressInfo;
  receiver.port = bound;
  receiver.url = `http://127.0.0.1:${bound}/hooks`;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return receiver;
}
