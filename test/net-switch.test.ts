// Two VMs in one process (each in its own worker) on a virtual switch: they
// configure static addresses, ping each other, and the switch learns both MACs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NicHost } from '../src/net/nic-host.js';
import { VirtualSwitch } from '../src/net/switch.js';
import { parseMac } from '../src/net/mac.js';
import { bootDefaultGuest } from './lib/vm-console.js';
import { budget } from './lib/budget.js';

test('two VMs on a switch ping each other', { timeout: budget(600_000) }, async () => {
  const sw = new VirtualSwitch('t');
  const macA = parseMac('52:54:00:00:00:0a')!;
  const macB = parseMac('52:54:00:00:00:0b')!;
  const nicA = new NicHost(sw.port('a'), macA);
  const nicB = new NicHost(sw.port('b'), macB);
  const append = 'console=ttyS0 tsvisor.dhcp=off';
  const [a, b] = await Promise.all([
    bootDefaultGuest({ append }, { nics: [nicA] }),
    bootDefaultGuest({ append }, { nics: [nicB] }),
  ]);
  try {
    assert.match(await a.run('cat /sys/class/net/eth0/address'), /52:54:00:00:00:0a/);
    await a.run('ip addr add 10.0.5.1/24 dev eth0');
    await b.run('ip addr add 10.0.5.2/24 dev eth0');
    const ping = await a.run('ping -c 3 -W 5 10.0.5.2', 120_000);
    assert.match(ping, /3 packets transmitted, 3 packets received/);
    assert.match(ping, /status 0/);
    assert.deepEqual(Object.keys(sw.macTable()).sort(), ['52:54:00:00:00:0a', '52:54:00:00:00:0b']);
    const sa = a.vm.nicStats()[0];
    assert.ok(sa.device.txFrames >= 4 && sa.device.rxFrames >= 4, JSON.stringify(sa));
  } finally {
    await Promise.all([a.vm.stop(), b.vm.stop()]);
  }
  assert.equal(sw.portCount, 0, 'ports leave the switch when their VM ends');
});
