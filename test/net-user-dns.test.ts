// The DNS message helpers used when tsvisor answers from getaddrinfo itself.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildResponse, ipv6Bytes, parseQuery, questionEnd, truncatedResponse } from '../src/net/user/dns.js';
import { dnsQuery, parseDnsResponse } from './lib/net-frames.js';

describe('DNS messages', () => {
  test('IPv6 text to bytes', () => {
    const hex = (s: string) => {
      const b = ipv6Bytes(s);
      return b ? Buffer.from(b).toString('hex') : null;
    };
    assert.equal(hex('::1'), '00000000000000000000000000000001');
    assert.equal(hex('::'), '00000000000000000000000000000000');
    assert.equal(hex('2001:db8::1'), '20010db8000000000000000000000001');
    assert.equal(hex('fe80::'), 'fe800000000000000000000000000000');
    assert.equal(hex('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
    assert.equal(hex('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
    assert.equal(hex('1:2:3:4:5:6:7:8:9'), null);
    assert.equal(hex('1::2::3'), null);
    assert.equal(hex('12345::'), null);
    assert.equal(hex('1:2:3:4:5:6:7::8'), null);
    assert.equal(hex('g::'), null);
  });

  test('questions are parsed; answers are built with name pointers', () => {
    const q = dnsQuery(0x1234, 'www.Example.test', 28);
    const qn = parseQuery(q);
    assert.ok(qn);
    assert.equal(qn!.name, 'www.Example.test');
    assert.equal(qn!.type, 28);
    assert.equal(questionEnd(q), q.length);
    const r = buildResponse(q, qn!, 0, [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)]);
    const a = parseDnsResponse(r);
    assert.equal(a.id, 0x1234);
    assert.equal(a.rcode, 0);
    assert.equal(a.answers.length, 2);
    assert.equal(a.answers[1].type, 28);
    assert.deepEqual([...a.answers[1].data], new Array(16).fill(2));
    assert.equal(r[2] & 0x80, 0x80, 'QR');
    assert.equal(r[2] & 0x01, 0x01, 'RD copied');
    const nx = parseDnsResponse(buildResponse(q, qn!, 3, []));
    assert.equal(nx.rcode, 3);
    assert.equal(nx.answers.length, 0);
  });

  test('odd queries are refused by the parser', () => {
    const q = dnsQuery(1, 'a.test', 1);
    const resp = q.slice();
    resp[2] |= 0x80;
    assert.equal(parseQuery(resp), null, 'a response');
    const two = q.slice();
    two[5] = 2;
    assert.equal(parseQuery(two), null, 'two questions');
    assert.equal(parseQuery(q.subarray(0, q.length - 1)), null, 'truncated');
    const odd = q.slice();
    odd[13] = 0x20; // a space inside a label
    assert.equal(parseQuery(odd), null, 'not a hostname');
    const ptr = q.slice();
    ptr[12] = 0xc0;
    assert.equal(parseQuery(ptr), null, 'a compression pointer in the question');
  });

  test('truncation keeps the question and sets TC', () => {
    const q = dnsQuery(9, 'big.test', 1);
    const qn = parseQuery(q)!;
    const full = buildResponse(q, qn, 0, Array.from({ length: 200 }, () => new Uint8Array(4)));
    const t = truncatedResponse(full)!;
    assert.equal(t.length, q.length);
    assert.equal(t[2] & 0x02, 0x02);
    assert.equal(parseDnsResponse(t).answers.length, 0);
  });
});
