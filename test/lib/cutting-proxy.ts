// A TCP proxy on loopback that forwards to a target and cuts the connection
// (both directions, as a broken link would) once a chosen number of bytes has
// gone from the client to the target. Used by the migration fault tests to break
// a live migration at a chosen point of its stream.

import { connect, createServer, type Server, type Socket } from 'node:net';

export interface CuttingProxy {
  port: number;
  /** Bytes forwarded client → target so far, over all connections. */
  readonly forwarded: number;
  /** Connections cut so far. */
  readonly cuts: number;
  close(): Promise<void>;
}

/**
 * Forwards 127.0.0.1:port → targetHost:targetPort. Every connection counts
 * toward one budget: once `cutAfter` client bytes have passed, the bytes that
 * would cross it are dropped and both sockets are destroyed (RST-like: no
 * orderly end). Later connections are cut at once. `cutAfter` = Infinity
 * forwards everything.
 */
export async function startCuttingProxy(targetHost: string, targetPort: number, cutAfter: number): Promise<CuttingProxy> {
  let forwarded = 0;
  let cuts = 0;
  const live = new Set<Socket>();
  const server: Server = createServer((client) => {
    live.add(client);
    const upstream = connect(targetPort, targetHost);
    live.add(upstream);
    const cut = () => {
      cuts++;
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    };
    const drop = (s: Socket) => () => {
      live.delete(s);
    };
    client.on('close', drop(client));
    upstream.on('close', drop(upstream));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    if (forwarded >= cutAfter) {
      cut();
      return;
    }
    client.on('data', (chunk: Buffer) => {
      const room = cutAfter - forwarded;
      if (chunk.length >= room) {
        if (room > 0) upstream.write(chunk.subarray(0, room));
        forwarded += Math.max(0, room);
        // Let the partial write leave before the reset, so the target sees a stream cut mid-frame.
        setImmediate(cut);
        client.pause();
        return;
      }
      forwarded += chunk.length;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (typeof addr !== 'object' || !addr) throw new Error('proxy: no address');
  return {
    port: addr.port,
    get forwarded() {
      return forwarded;
    },
    get cuts() {
      return cuts;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of live) s.destroy();
        server.close(() => resolve());
      }),
  };
}
