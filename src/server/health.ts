// The TCP health check on 127.0.0.1: any connection gets `HTTP/1.1 200 OK`.
import { createServer, type Server } from 'node:net';

const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n';

export async function startHealthCheck(port: number): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end(OK);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  return server;
}
