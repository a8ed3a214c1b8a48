// Test driver: runs PcapCapture inside a network namespace (a Node process cannot switch namespaces) and reports what it sees as JSON lines. Trusts its arguments and stdin: they come from the test that spawned it.
import { PcapCapture } from '../../src/server/capture-pcap.ts';

export type DriverEvent =
  | { readonly event: 'ready' }
  | { readonly event: 'packet'; readonly source: string; readonly family: 4 | 6; readonly payloadHex: string }
  | { readonly event: 'drop'; readonly reason: string }
  | { readonly event: 'error'; readonly message: string }
  | { readonly event: 'closed' };

const emit = (e: DriverEvent): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};

/** argv: interfaces (comma-separated), knock port. Closing stdin closes the capture; the process must then exit by itself. */
async function main(): Promise<void> {
  const [interfaces = '', port = ''] = process.argv.slice(2);
  const capture = new PcapCapture({
    interfaces: interfaces.split(','),
    port: Number(port),
    onDrop: (reason) => emit({ event: 'drop', reason }),
  });
  try {
    await capture.start((payload, source) => emit({ event: 'packet', source: source.text, family: source.family, payloadHex: Buffer.from(payload).toString('hex') }));
  } catch (err) {
    emit({ event: 'error', message: err instanceof Error ? err.message : String(err) });
    // Run with --expose-gc: collecting the handle of a failed open must not abort the process (see capture-pcap.ts).
    globalThis.gc?.();
    process.exitCode = 1;
    return;
  }
  emit({ event: 'ready' });
  process.stdin.on('end', () => {
    void capture.close().then(() => emit({ event: 'closed' }));
  });
  process.stdin.resume();
}

await main();
