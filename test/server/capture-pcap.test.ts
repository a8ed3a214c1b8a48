// pcap capture: option checks and frame handling against a fake binding (no root), then the real libpcap in a server/client namespace pair where nothing listens on the knock port and nftables drops it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { INSTALL_HINT, PcapCapture } from '../../src/server/capture-pcap.ts';
import type { PcapCaptureOptions } from '../../src/server/capture-pcap.ts';
import { FRAME_DROP } from '../../src/protocol/frame.ts';
import type { FrameDrop } from '../../src/protocol/frame.ts';
import { execIn, spawnIn } from '../../src/harness/netns.ts';
import { sendUdp } from '../../src/harness/programs.ts';
import { createTopology, skipReason } from '../../src/harness/topology.ts';
import type { Topology } from '../../src/harness/topology.ts';
import type { DriverEvent } from '../tools/pcap-driver.ts';

const PORT = 62201;
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

// ---- a fake 'cap' binding: records what the capture asks of libpcap and delivers frames as cap does ----

interface FakeHandle {
  readonly device: string;
  readonly filter: string;
  readonly ringBytes: number;
  closed: boolean;
  listening: boolean;
  deliver(frame: Uint8Array): void;
}

function fakeBinding(linkName: string, failOn: readonly string[] = []) {
  const handles: FakeHandle[] = [];
  class Cap {
    #listener: ((bytes: number, truncated: boolean) => void) | undefined;
    #buffer: Buffer = Buffer.alloc(0);
    #record: FakeHandle | undefined;
    open(device: string, filter: string, ringBytes: number, buffer: Buffer): string {
      if (failOn.includes(device)) throw new Error('No such device exists');
      this.#buffer = buffer;
      const self = this;
      this.#record = {
        device, filter, ringBytes, closed: false, listening: false,
        deliver(frame) {
          const n = Math.min(frame.length, self.#buffer.length);
          self.#buffer.set(frame.subarray(0, n));
          self.#listener?.(n, frame.length > n);
        },
      };
      handles.push(this.#record);
      return linkName;
    }
    close(): boolean {
      if (this.#record !== undefined) this.#record.closed = true;
      return true;
    }
    on(_event: 'packet', listener: (bytes: number, truncated: boolean) => void): this {
      this.#listener = listener;
      if (this.#record !== undefined) this.#record.listening = true;
      return this;
    }
    removeAllListeners(): this {
      this.#listener = undefined;
      if (this.#record !== undefined) this.#record.listening = false;
      return this;
    }
    static deviceList(): [] {
      return [];
    }
    static findDevice(): undefined {
      return undefined;
    }
  }
  return { binding: { Cap }, handles };
}

// ---- frames (frame.test.ts covers the parser; these only need to be valid) ----

const be16 = (n: number): number[] => [(n >> 8) & 0xff, n & 0xff];

function ipv4Udp(payload: Uint8Array, dstPort = PORT): Uint8Array {
  const h = [0x45, 0, ...be16(28 + payload.length), 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 9, 0, 2, 10, 9, 0, 1];
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ((h[i] ?? 0) << 8) | (h[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  h.splice(10, 2, ...be16(~sum & 0xffff));
  return Uint8Array.from([...h, ...be16(40000), ...be16(dstPort), ...be16(8 + payload.length), 0, 0, ...payload]);
}

const ethernet = (ip: Uint8Array): Uint8Array => Uint8Array.from([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00, ...ip]);
const sll2 = (ip: Uint8Array): Uint8Array => Uint8Array.from([0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, ...ip]);
const KNOCK = Uint8Array.from({ length: 120 }, (_, i) => (i * 13 + 1) & 0xff);

describe('options and frame handling (fake binding)', () => {
  // The fake binding knows any interface name; the sysfs check is for the real one.
  const opts = (o: Partial<PcapCaptureOptions>): PcapCaptureOptions => ({ interfaces: ['eth0'], port: PORT, interfaceExists: () => true, ...o });

  test('bad options are operator errors at construction', () => {
    for (const port of [0, 65_536, 1.5, Number.NaN]) assert.throws(() => new PcapCapture(opts({ port })), /knock port/);
    assert.throws(() => new PcapCapture(opts({ interfaces: [] })), /at least one interface/);
    for (const name of ['', 'a/b', 'a b', 'x'.repeat(16)]) assert.throws(() => new PcapCapture(opts({ interfaces: [name] })), /not an interface name/);
    assert.throws(() => new PcapCapture(opts({ interfaces: ['eth0', 'eth0'] })), /named twice/);
    assert.throws(() => new PcapCapture(opts({ interfaces: ['any', 'eth0'] })), /"any" cannot be combined/);
  });

  test('a missing binding is one clear error, and start can be tried again', async () => {
    const missing = new Error("Cannot find module '../build/Release/cap.node'\nRequire stack:\n- /x/node_modules/cap/lib/Cap.js");
    const capture = new PcapCapture(opts({ loadBinding: () => Promise.reject(missing) }));
    for (let i = 0; i < 2; i++) {
      await assert.rejects(capture.start(() => {}), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.equal(err.message, `${INSTALL_HINT} (loading it failed: Cannot find module '../build/Release/cap.node')`);
        assert.equal(err.cause, missing);
        return true;
      });
    }
  });

  test('an addon built for another Node.js says how to rebuild it', async () => {
    const abi = Object.assign(new Error("The module '/x/cap.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 115."), { code: 'ERR_DLOPEN_FAILED' });
    const capture = new PcapCapture(opts({ loadBinding: () => Promise.reject(abi) }));
    await assert.rejects(capture.start(() => {}), {
      message: `${INSTALL_HINT} (loading it failed: The module '/x/cap.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 115.; if Node.js changed since it was built: npm rebuild cap)`,
    });
  });

  test('frames become (payload copy, source); everything else is a drop reason', async () => {
    const { binding, handles } = fakeBinding('ETHERNET');
    const drops: FrameDrop[] = [];
    const got: { payload: Uint8Array; source: string }[] = [];
    const capture = new PcapCapture(opts({ interfaces: ['eth0', 'eth1'], onDrop: (r) => drops.push(r), loadBinding: async () => binding }));
    await capture.start((payload, source) => got.push({ payload, source: source.text }));
    await assert.rejects(capture.start(() => {}), /already started/);
    assert.deepEqual(handles.map((h) => [h.device, h.filter, h.listening]), [['eth0', `udp dst port ${PORT}`, true], ['eth1', `udp dst port ${PORT}`, true]]);
    assert.ok(handles.every((h) => h.ringBytes >= 1 << 20));
    const [eth0] = handles;
    assert.ok(eth0 !== undefined);

    eth0.deliver(ethernet(ipv4Udp(KNOCK)));
    eth0.deliver(ethernet(ipv4Udp(Uint8Array.of(9, 9, 9)))); // reuses the buffer the first payload came from
    assert.deepEqual(got.map((g) => [g.source, hex(g.payload)]), [['10.9.0.2', hex(KNOCK)], ['10.9.0.2', '090909']]);

    eth0.deliver(ethernet(ipv4Udp(KNOCK, 53)));
    eth0.deliver(Uint8Array.of(1, 2, 3));
    eth0.deliver(ethernet(ipv4Udp(new Uint8Array(5000))));
    assert.deepEqual(drops, [FRAME_DROP.wrongPort, FRAME_DROP.linkShort, FRAME_DROP.snapTruncated]);

    await capture.close();
    assert.ok(handles.every((h) => h.closed && !h.listening));
    await capture.close();
  });

  test("cap's 'Unknown linktype <n>' is parsed as that DLT (276: SLL2)", async () => {
    const { binding, handles } = fakeBinding('Unknown linktype 276');
    const got: string[] = [];
    const capture = new PcapCapture(opts({ interfaces: ['any'], loadBinding: async () => binding }));
    await capture.start((payload, source) => got.push(`${source.text} ${hex(payload)}`));
    handles[0]?.deliver(sll2(ipv4Udp(KNOCK)));
    assert.deepEqual(got, [`10.9.0.2 ${hex(KNOCK)}`]);
    await capture.close();
  });

  test('close() while the binding loads: start opens nothing', async () => {
    const { binding, handles } = fakeBinding('ETHERNET');
    let release = (): void => {};
    const loaded = new Promise<void>((resolve) => { release = resolve; });
    const capture = new PcapCapture(opts({ loadBinding: async () => { await loaded; return binding; } }));
    const starting = capture.start(() => {});
    await capture.close();
    release();
    await starting;
    assert.deepEqual(handles, []);
  });

  test('a link type the parser does not know is refused at start, and its handle closed', async () => {
    const { binding, handles } = fakeBinding('NULL');
    const capture = new PcapCapture(opts({ loadBinding: async () => binding }));
    await assert.rejects(capture.start(() => {}), /interface "eth0" has link type NULL/);
    assert.equal(handles[0]?.closed, true);
  });

  test('if one interface fails to open, the ones already open are closed', async () => {
    const { binding, handles } = fakeBinding('ETHERNET', ['eth1']);
    const capture = new PcapCapture(opts({ interfaces: ['eth0', 'eth1'], loadBinding: async () => binding }));
    await assert.rejects(capture.start(() => {}), /cannot open interface "eth1": No such device exists/);
    assert.deepEqual(handles.map((h) => [h.device, h.closed]), [['eth0', true]]);
  });
});

// ---- the real libpcap, in namespaces ----

/** In CI a capture test that cannot load its binding is an error, like a missing `ip` or `nft`. */
async function capSkipReason(): Promise<string | undefined> {
  const loaded = await import('cap').then(() => undefined, (err: unknown) => `${INSTALL_HINT} (${err instanceof Error ? err.message.split('\n', 1)[0] : String(err)})`);
  if (loaded !== undefined && process.env['CI'] !== undefined && process.env['CI'] !== '') throw new Error(`CI must run the pcap capture tests, but ${loaded}`);
  return loaded;
}

const skip = skipReason() ?? (await capSkipReason());
const DRIVER = new URL('../tools/pcap-driver.js', import.meta.url).pathname;
const DROP_TABLE = `table inet sesame_test_drop {
  chain input {
    type filter hook input priority -10; policy accept;
    udp dport ${PORT} counter drop
  }
}
`;

interface Driver {
  waitFor(what: string, match: (e: DriverEvent) => boolean, timeoutMs?: number): Promise<DriverEvent>;
  readonly events: readonly DriverEvent[];
  readonly exited: Promise<number | null>;
  /** Closes stdin: the driver closes the capture and must then exit by itself. */
  stop(): void;
  kill(): void;
}

function startDriver(ns: string, interfaces: string): Driver {
  const child = spawnIn(ns, [process.execPath, '--expose-gc', DRIVER, interfaces, String(PORT)]);
  const events: DriverEvent[] = [];
  let wake: (() => void)[] = [];
  let stderr = '';
  const notify = (): void => { for (const w of wake) w(); wake = []; };
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  createInterface({ input: child.stdout }).on('line', (line) => { events.push(JSON.parse(line) as DriverEvent); notify(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); notify(); }));
  return {
    events,
    exited,
    async waitFor(what, match, timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(match);
        if (found !== undefined) return found;
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(`pcap driver: no ${what}; events ${JSON.stringify(events)}; stderr ${stderr.trim()}`);
        }
        await new Promise<void>((resolve) => { wake.push(resolve); setTimeout(resolve, 100); });
      }
    },
    stop: () => { child.stdin.end(); },
    kill: () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); },
  };
}

const within = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref())]);

describe('libpcap in a network namespace', { skip }, () => {
  let topo: Topology;

  const dropped = async (): Promise<number> => {
    const r = await execIn(topo.server.ns, ['nft', 'list', 'chain', 'inet', 'sesame_test_drop', 'input']);
    assert.equal(r.code, 0, r.stderr);
    return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? Number.NaN);
  };

  before(async () => {
    topo = await createTopology('pcap');
    const made = await execIn(topo.server.ns, ['nft', '-f', '-'], { input: DROP_TABLE });
    assert.equal(made.code, 0, made.stderr);
  });

  after(async () => {
    await topo?.destroy();
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), /sesame-pcap-/);
  });

  for (const iface of ['veth-srv', 'any']) {
    test(`on ${iface}: IPv4 and IPv6 knocks arrive with their source though no socket listens and nftables drops them`, async () => {
      const { server, client } = topo;
      const knock4 = Uint8Array.from(KNOCK, (b) => b ^ 0x44);
      const knock6 = Uint8Array.from(KNOCK, (b) => b ^ 0x66);
      const driver = startDriver(server.ns, iface);
      try {
        await driver.waitFor('ready', (e) => e.event === 'ready');
        const droppedBefore = await dropped();
        await sendUdp(client.ns, server.v4, PORT + 1, Uint8Array.of(1)); // another port: the BPF filter keeps it out
        await sendUdp(client.ns, server.v4, PORT, knock4);
        await sendUdp(client.ns, server.v6, PORT, knock6);
        const p4 = await driver.waitFor('IPv4 knock', (e) => e.event === 'packet' && e.family === 4);
        const p6 = await driver.waitFor('IPv6 knock', (e) => e.event === 'packet' && e.family === 6);
        assert.deepEqual(p4, { event: 'packet', source: client.v4, family: 4, payloadHex: hex(knock4) });
        assert.deepEqual(p6, { event: 'packet', source: client.v6, family: 6, payloadHex: hex(knock6) });

        assert.ok(await dropped() >= droppedBefore + 2, 'nftables dropped the knocks the capture saw');
        const sockets = await execIn(server.ns, ['ss', '-H', '-u', '-a', '-n']);
        assert.doesNotMatch(sockets.stdout, new RegExp(`:${PORT}\\b`), 'nothing is bound to the knock port');

        driver.stop();
        await driver.waitFor('closed', (e) => e.event === 'closed');
        assert.equal(await within(driver.exited, 3_000, 'exit after close'), 0);
        assert.deepEqual(driver.events.filter((e) => e.event === 'packet').length, 2, 'no other datagram, no duplicate');
        assert.deepEqual(driver.events.filter((e) => e.event === 'drop'), []);
      } finally {
        driver.kill();
      }
    });
  }

  test('an interface that does not exist is a clear error, and the process survives collecting the failed handle', async () => {
    const driver = startDriver(topo.server.ns, 'nosuchdev0');
    try {
      const e = await driver.waitFor('error', (ev) => ev.event === 'error');
      assert.match(e.event === 'error' ? e.message : '', /cannot open interface "nosuchdev0"/);
      assert.equal(await within(driver.exited, 3_000, 'exit after a failed start'), 1);
    } finally {
      driver.kill();
    }
  });
});
