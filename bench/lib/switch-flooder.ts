// Runs in a worker thread of the benchmark or test: joins a switch of the
// daemon through its Unix socket (switch-hub.ts's framing: 2-byte length +
// frame) and sends broadcast frames as fast as the socket takes them, until
// told to stop. Kept off the measuring thread so the flood does not inflate
// the latencies it measures.

import { connect } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';

const { socketPath, frameBytes } = workerData as { socketPath: string; frameBytes: number };
const frame = Buffer.alloc(2 + frameBytes);
frame.writeUInt16BE(frameBytes, 0);
frame.fill(0xff, 2, 8); // destination: broadcast
Buffer.from([0x02, 0x00, 0x00, 0xf1, 0x00, 0x01]).copy(frame, 8); // a locally administered source
frame.writeUInt16BE(0x88b5, 14); // local experimental EtherType
const batch = Buffer.concat(Array.from({ length: 64 }, () => frame));

let sent = 0;
let stop = false;
const sock = connect(socketPath);
sock.on('error', (e) => parentPort!.postMessage({ type: 'error', message: e.message }));
sock.on('connect', () => {
  const pump = () => {
    while (!stop) {
      sent += 64;
      if (!sock.write(batch)) {
        sock.once('drain', pump);
        return;
      }
    }
  };
  pump();
});
parentPort!.on('message', () => {
  stop = true;
  sock.end(() => {
    parentPort!.postMessage({ type: 'done', sent });
    parentPort!.close();
  });
});
