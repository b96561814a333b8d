// The health-check port on 127.0.0.1. As in the original, a connection gets
// `HTTP/1.1 200 OK` (old checkers connect, perhaps send anything, and read). An
// HTTP request for one of these paths gets its own answer:
//
//   GET /healthz     200 `ok` while serving, 503 `draining` while draining
//   GET /metrics     Prometheus text format (src/metrics/)
//   GET /containers  every container's Info as JSON, like Garden's BulkInfo;
//                    ?handle=a&handle=b (or ?handles=a,b) for some of them.
//                    Only where routes.containers is given: the unix socket
//                    (health_check_server.unix_domain_path), and the TCP port
//                    only when health_check_server.containers_on_tcp is true.
//
// A tiny HTTP/1.x responder of our own rather than node:http: it must answer a
// connection that sends nothing at all, which an HTTP server never does. Every
// answer closes the connection.
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { stringify64 } from '../protocol/json64.ts';

export interface HealthRoutes {
  /** True while the daemon drains. */
  draining(): boolean;
  metrics?(): Promise<{ contentType: string; body: string }>;
  /** Info of the containers named (all when undefined), by handle. */
  containers?(handles: string[] | undefined): Promise<unknown>;
}

const LEGACY_BODY = 'ok\n';
const LEGACY_OK = `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${LEGACY_BODY.length}\r\nConnection: close\r\n\r\n${LEGACY_BODY}`;
/**
 * How long a new connection may stay silent before it gets the plain answer: an
 * HTTP client sends its request as soon as it connects (loopback, well under this).
 */
export const LEGACY_WAIT_MS = 100;
/** A request head larger than this, or slower than IDLE_MS, is not served. */
const MAX_HEAD_BYTES = 8192;
const IDLE_MS = 10_000;

const REASONS: Record<number, string> = {
  200: 'OK', 400: 'Bad Request', 405: 'Method Not Allowed', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

interface Reply {
  status: number;
  type: string;
  body: string;
  headers?: Record<string, string>;
}

const text = (status: number, body: string): Reply => ({ status, type: 'text/plain; charset=utf-8', body });

export async function startHealthCheck(port: number, routes: HealthRoutes = { draining: () => false }): Promise<Server> {
  return listenOn(routes, (server, done) => server.listen(port, '127.0.0.1', done));
}

/**
 * The same answers on a unix socket of mode `permissions` (0600 by default: root only).
 * The TCP port is open to every local user; what names containers (/containers:
 * handles, addresses, paths, job ids) belongs here.
 */
export async function startHealthSocket(path: string, routes: HealthRoutes, permissions = 0o600): Promise<Server> {
  await rm(path, { force: true });
  const server = await listenOn(routes, (srv, done) => srv.listen(path, done));
  await chmod(path, permissions);
  return server;
}

async function listenOn(routes: HealthRoutes, listen: (server: Server, done: () => void) => void): Promise<Server> {
  // Half-open allowed: a checker that shuts down its side at once still gets the answer.
  const server = createServer({ allowHalfOpen: true }, (socket) => serveConnection(socket, routes));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(server, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  return server;
}

function serveConnection(socket: Socket, routes: HealthRoutes): void {
  socket.on('error', () => {});
  socket.setTimeout(IDLE_MS, () => socket.destroy());
  let head = Buffer.alloc(0);
  let decided = false;
  const legacy = () => {
    if (decided) return;
    decided = true;
    socket.end(LEGACY_OK);
  };
  const timer = setTimeout(legacy, LEGACY_WAIT_MS);
  socket.on('data', (chunk: Buffer) => {
    if (decided) return;
    clearTimeout(timer);
    head = Buffer.concat([head, chunk]);
    const start = head.subarray(0, 17).toString('latin1');
    const method = /^([A-Z]{1,16})( |$)/.exec(start);
    // Not HTTP: the plain answer, as before. A method still arriving: wait for more.
    if (!method) return legacy();
    if (method[2] === '') return;
    const end = headEnd(head);
    if (end < 0) {
      if (head.length > MAX_HEAD_BYTES) {
        decided = true;
        respond(socket, 'GET', text(431, 'request head too large\n'));
      }
      return;
    }
    decided = true;
    socket.pause();
    const requestLine = head.subarray(0, head.indexOf('\n')).toString('latin1').replace(/\r$/, '');
    route(requestLine, routes).then(
      (reply) => respond(socket, method[1]!, reply),
      (err: unknown) => respond(socket, method[1]!, text(500, `${(err as Error)?.message ?? String(err)}\n`)),
    );
  });
  socket.once('end', () => {
    // The peer sent its last byte without a request: still the plain answer.
    if (!decided) {
      clearTimeout(timer);
      legacy();
    }
  });
}

function headEnd(buf: Buffer): number {
  const crlf = buf.indexOf('\r\n\r\n');
  return crlf >= 0 ? crlf : buf.indexOf('\n\n');
}

async function route(requestLine: string, routes: HealthRoutes): Promise<Reply | 'legacy'> {
  const m = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(requestLine);
  if (!m) return text(400, 'bad request line\n');
  const [, method, target] = m;
  let url: URL;
  try {
    url = new URL(target!, 'http://localhost');
  } catch {
    return text(400, 'bad request target\n');
  }
  const known = url.pathname === '/healthz' || (url.pathname === '/metrics' && routes.metrics) || (url.pathname === '/containers' && routes.containers);
  // Any other path: what every connection got before there were paths.
  if (!known) return 'legacy';
  if (method !== 'GET' && method !== 'HEAD') return { ...text(405, 'GET or HEAD\n'), headers: { Allow: 'GET, HEAD' } };
  if (url.pathname === '/healthz') return routes.draining() ? text(503, 'draining\n') : text(200, 'ok\n');
  if (url.pathname === '/metrics') {
    const { contentType, body } = await routes.metrics!();
    return { status: 200, type: contentType, body };
  }
  const handles = [...url.searchParams.getAll('handle'), ...url.searchParams.getAll('handles').flatMap((h) => h.split(','))].filter(Boolean);
  const all = !url.searchParams.has('handle') && !url.searchParams.has('handles');
  const body = await routes.containers!(all ? undefined : handles);
  return { status: 200, type: 'application/json', body: `${stringify64(body)}\n` };
}

function respond(socket: Socket, method: string, reply: Reply | 'legacy'): void {
  if (socket.destroyed) return;
  // Reading again lets the peer's FIN close the socket.
  socket.resume();
  if (reply === 'legacy') {
    socket.end(LEGACY_OK);
    return;
  }
  const body = Buffer.from(reply.body, 'utf8');
  const headers = {
    'Content-Type': reply.type,
    'Content-Length': String(body.length),
    'Cache-Control': 'no-store',
    Connection: 'close',
    ...reply.headers,
  };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const headBytes = Buffer.from(`HTTP/1.1 ${reply.status} ${REASONS[reply.status] ?? ''}\r\n${lines}\r\n`, 'latin1');
  socket.end(method === 'HEAD' ? headBytes : Buffer.concat([headBytes, body]));
}
