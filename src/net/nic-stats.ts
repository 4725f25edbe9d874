// The NIC lines of the --stats report.

import type { NicStats } from './nic-host.js';

function n(x: number): string {
  return x.toLocaleString('en-US');
}

export function formatNicStats(nics: readonly NicStats[]): string {
  return nics
    .map((s, i) => {
      const d = s.device;
      const ringDrops = s.ringDrops.toHost + s.ringDrops.toGuest;
      return (
        `  eth${i} (${s.mac}, ${s.backend})\n` +
        `    sent                ${n(d.txFrames)} frames, ${n(d.txBytes)} bytes; ${n(d.txDropped)} malformed dropped\n` +
        `    received            ${n(d.rxFrames)} frames, ${n(d.rxBytes)} bytes; ${n(d.rxDropped)} dropped\n` +
        `    host side           ${n(s.host.dropped)} frames dropped by the backend, ${n(ringDrops)} lost to full rings\n`
      );
    })
    .join('');
}
