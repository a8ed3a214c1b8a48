// The opt-in metrics endpoint: an HTTP listener on a loopback address (another only when the config says so) or a unix socket, answering GET and HEAD of /metrics and nothing else, with bounded connections and timeouts. Trusts nothing in a request: it only compares the method and the path.
import { lstatSync, unlinkSync, chmodSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { isAbsolute, resolve } from 'node:path';
import { errnoCode, errorMessage, EXIT, OperatorError } from '../errors.ts';
import { METRICS } from '../limits.ts';
import { parseAddress } from '../protocol/address.ts';
import type { Address } from '../protocol/address.ts';
import { CONTENT_TYPE } from './prometheus.ts';

export type MetricsListen =
  | { readonly kind: 'tcp'; readonly address: Address; readonly port: number; readonly text: string }
  | { readonly kind: 'unix'; readonly path: string; readonly text: string };

const TCP_FORM = /^(?:\[([0-9A-Fa-f:.]+)\]|([0-9.]+)):([0-9]{1,5})$/;

/** "127.0.0.1:9462", "[::1]:9462" or "unix:PATH" (relative to base); otherwise a sentence saying what was expected. */
export function parseMetricsListen(text: string, base: string): MetricsListen | string {
  if (text.startsWith('unix:')) {
    const raw = text.slice('unix:'.length);
    if (raw === '' || raw.includes('\0')) return `expected unix:PATH, got "${text}"`;
    const path = isAbsolute(raw) ? raw : resolve(base, raw);
    if (Buffer.byteLength(path) > METRICS.maxUnixPathBytes) return `the socket path ${path} is longer than ${METRICS.maxUnixPathBytes} bytes (the kernel's limit)`;
    return { kind: 'unix', path, text: `unix:${path}` };
  }
  const m = TCP_FORM.exec(text);
  const address = m === null ? undefined : parseAddress(m[1] ?? m[2] ?? '');
  const port = Number(m?.[3]);
  // An IPv6 address must be bracketed and an IPv4 one must not: "[10.0.0.1]:1" and ":::1" are refused.
  if (m === null || address === undefined || (address.family === 6) !== (m[1] !== undefined) || port < 1 || port > 65535) {
    return `expected IPv4:PORT, [IPv6]:PORT or unix:PATH (e.g. "127.0.0.1:9462", "[::1]:9462", "unix:/run/sesame/metrics.sock"), got "${text}"`;
  }
  return { kind: 'tcp', address, port, text: address.family === 6 ? `[${address.text}]:${port}` : `${address.text}:${port}` };
}

/** 127.0.0.0/8 and ::1: only processes on this host reach them. */
export function isLoopback(a: Address): boolean {
  return a.family === 4 ? a.bytes[0] === 127 : a.bytes.every((b, i) => b === (i === 15 ? 1 : 0));
}

export interface MetricsEndpoint {
  /** Where it listens, as the config would write it. */
  readonly text: string;
  close(): Promise<void>;
}

/** A socket file left by a daemon that died is removed; a live one, or anything that is not a socket, is not touched. */
async function clearStaleSocket(path: string): Promise<void> {
  let socket: boolean;
  try {
    socket = lstatSync(path).isSocket();
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  if (!socket) throw new OperatorError(`cannot open the metrics endpoint unix:${path}: the path exists and is not a socket (not replacing it)`, EXIT.network);
  const { connect } = await import('node:net');
  const alive = await new Promise<boolean>((done) => {
    const c = connect(path);
    c.once('connect', () => { c.destroy(); done(true); });
    c.once('error', () => done(false));
  });
  if (alive) throw new OperatorError(`cannot open the metrics endpoint unix:${path}: another process is listening on it`, EXIT.network);
  unlinkSync(path);
}

function reply(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(body);
}

export interface EndpointBounds {
  readonly maxConnections: number;
  readonly requestTimeoutMs: number;
}

/** Starts listening; rejects with an OperatorError (exit 8) naming the address when it cannot. page() makes the body of each scrape. */
export async function openMetricsEndpoint(listen: MetricsListen, page: () => Promise<string>, onError: (err: unknown) => void, bounds: EndpointBounds = METRICS): Promise<MetricsEndpoint> {
  // Loaded here, not at start: every sesame command reads the config through this module, and node:http costs ~10-50 ms to load.
  const { createServer } = await import('node:http');
  const timeouts = { requestTimeout: bounds.requestTimeoutMs, headersTimeout: bounds.requestTimeoutMs, connectionsCheckingInterval: Math.min(1000, bounds.requestTimeoutMs) };
  const server = createServer({ ...timeouts, maxHeaderSize: METRICS.maxHeaderBytes }, (req, res) => {
    req.resume(); // a body, if any, is read and ignored
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics') return reply(res, 404, 'not found: the metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return reply(res, 405, 'method not allowed: GET or HEAD\n');
    }
    page().then(
      (body) => reply(res, 200, body, CONTENT_TYPE),
      (err: unknown) => {
        onError(err);
        reply(res, 500, 'internal error\n');
      },
    );
  });
  server.maxConnections = bounds.maxConnections;
  server.keepAliveTimeout = bounds.requestTimeoutMs;
  // Node checks requestTimeout only for some connection states; a connection silent this long is closed in any state.
  server.setTimeout(bounds.requestTimeoutMs, (socket) => socket.destroy());
  if (listen.kind === 'unix') await clearStaleSocket(listen.path);
  await new Promise<void>((done, fail) => {
    server.once('error', (err) => fail(new OperatorError(`cannot open the metrics endpoint ${listen.text}: ${errnoCode(err) || errorMessage(err)}`, EXIT.network)));
    if (listen.kind === 'unix') server.listen(listen.path, done);
    else server.listen({ host: listen.address.text, port: listen.port, ipv6Only: listen.address.family === 6 }, done);
  });
  server.on('error', onError);
  if (listen.kind === 'unix') {
    try {
      chmodSync(listen.path, METRICS.unixSocketMode);
    } catch (err) {
      server.close();
      throw new OperatorError(`cannot open the metrics endpoint ${listen.text}: chmod: ${errorMessage(err)}`, EXIT.network);
    }
  }
  return {
    text: listen.text,
    close: () => new Promise<void>((done) => {
      server.close(() => done());
      server.closeAllConnections();
    }),
  };
}
