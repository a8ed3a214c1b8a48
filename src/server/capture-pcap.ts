// Knock capture by passive libpcap sniffing (optional package 'cap'): sees packets before netfilter drops them and needs no bound socket. Trusts nothing in a frame: wire.ts parses it.
import { existsSync } from 'node:fs';
import { errorMessage } from '../errors.ts';
import type { Capture, OnPacket } from './capture.ts';
import { CAPTURE } from '../limits.ts';
import { FRAME_DROP, isParsedLinkType, parseFrame } from '../protocol/frame.ts';
import type { FrameDrop } from '../protocol/frame.ts';

type CapBinding = typeof import('cap');
type CapHandle = InstanceType<CapBinding['Cap']>;

export interface PcapCaptureOptions {
  /** Interface names, or ['any'] for every interface in this network namespace. */
  readonly interfaces: readonly string[];
  readonly port: number;
  /** Told of each frame libpcap delivered that is not a usable knock datagram. Must not throw. */
  readonly onDrop?: (reason: FrameDrop) => void;
  /** Tests inject a loader that fails; the daemon uses the default. */
  readonly loadBinding?: () => Promise<CapBinding>;
  /** Whether a network interface exists; tests with a fake binding say yes. Default: /sys/class/net in this namespace. */
  readonly interfaceExists?: (name: string) => boolean;
}

export const INSTALL_HINT = 'pcap capture needs the optional package cap and libpcap: apt-get install libpcap-dev && npm install cap';

const INTERFACE_NAME = /^[^\s/\u0000]{1,15}$/;

/** cap names the DLTs it knows and formats the rest as 'Unknown linktype <n>'. */
const LINK_TYPE_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['NULL', 0],
  ['ETHERNET', 1],
  ['RAW', 12],
  ['LINKTYPE_LINUX_SLL', 113],
  ['IEEE802_11_RADIO', 127],
]);

/**
 * cap 0.2.1 leaves a half-open handle behind a failed open(); when that object is garbage-collected its destructor
 * stops a libuv poll handle that was never initialised and the process aborts. Holding the object keeps it from
 * being collected: one leaked pcap handle per failed start, which ends the daemon anyway.
 */
const failedOpens: CapHandle[] = [];

export class PcapCapture implements Capture {
  readonly #interfaces: readonly string[];
  readonly #port: number;
  readonly #onDrop: (reason: FrameDrop) => void;
  readonly #load: () => Promise<CapBinding>;
  readonly #exists: (name: string) => boolean;
  #handles: CapHandle[] = [];
  #started = false;

  constructor(options: PcapCaptureOptions) {
    const { interfaces, port } = options;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`pcap capture: knock port must be an integer from 1 to 65535, got ${port}`);
    if (interfaces.length === 0) throw new Error('pcap capture: name at least one interface, or "any"');
    for (const name of interfaces) if (!INTERFACE_NAME.test(name)) throw new Error(`pcap capture: "${name}" is not an interface name`);
    if (new Set(interfaces).size !== interfaces.length) throw new Error('pcap capture: an interface is named twice');
    // 'any' already includes every interface: with others, each knock would arrive twice.
    if (interfaces.length > 1 && interfaces.includes('any')) throw new Error('pcap capture: "any" cannot be combined with other interfaces');
    this.#interfaces = [...interfaces];
    this.#port = port;
    this.#onDrop = options.onDrop ?? (() => {});
    this.#load = options.loadBinding ?? loadCap;
    this.#exists = options.interfaceExists ?? ((name) => existsSync(`/sys/class/net/${name}`));
  }

  async start(onPacket: OnPacket): Promise<void> {
    if (this.#started) throw new Error('pcap capture: already started');
    this.#started = true;
    let binding: CapBinding;
    try {
      binding = await this.#load();
    } catch (err) {
      this.#started = false;
      throw new Error(`${INSTALL_HINT} (loading it failed: ${loadFailure(err)})`, { cause: err });
    }
    // close() while the binding loaded: stay closed.
    if (!this.#started) return;
    const opened: CapHandle[] = [];
    try {
      for (const device of this.#interfaces) opened.push(this.#open(binding, device, onPacket));
    } catch (err) {
      for (const handle of opened) stop(handle);
      this.#started = false;
      throw err;
    }
    this.#handles = opened;
  }

  async close(): Promise<void> {
    const handles = this.#handles;
    this.#handles = [];
    this.#started = false;
    for (const handle of handles) stop(handle);
  }

  #open(binding: CapBinding, device: string, onPacket: OnPacket): CapHandle {
    // cap always opens in promiscuous mode and prints a libpcap warning on stderr for an interface without IPv4
    // address (and for 'any'). Cooked captures mark frames for other hosts (dropped in wire.ts); Ethernet ones cannot.
    // Checked first: for a missing interface libpcap would also print its own warning, and the operator gets two lines.
    if (device !== 'any' && !this.#exists(device)) throw new Error(`pcap capture cannot open interface "${device}": no such interface in this network namespace (ip link lists them)`);
    const handle = new binding.Cap();
    const buffer = Buffer.alloc(CAPTURE.pcapFrameBufferBytes);
    // A plain view, so that slice() below copies (Buffer#slice would not).
    const view = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
    let linkName: string;
    try {
      linkName = handle.open(device, `udp dst port ${this.#port}`, CAPTURE.pcapRingBytes, buffer);
    } catch (err) {
      failedOpens.push(handle);
      const reason = firstLine(err);
      const hint = /permission|not permitted/i.test(reason) ? ' (capturing needs root or CAP_NET_RAW)' : '';
      throw new Error(`pcap capture cannot open interface "${device}": ${reason}${hint}`, { cause: err });
    }
    const linkType = linkTypeOf(linkName);
    if (linkType === undefined || !isParsedLinkType(linkType)) {
      stop(handle);
      throw new Error(`pcap capture: interface "${device}" has link type ${linkName}, which sesame does not parse (Ethernet, Linux cooked and raw IP are supported)`);
    }
    const port = this.#port;
    const onDrop = this.#onDrop;
    handle.on('packet', (bytes, truncated) => {
      if (truncated) return onDrop(FRAME_DROP.snapTruncated);
      const frame = parseFrame(linkType, view.subarray(0, bytes));
      if (!frame.ok) return onDrop(frame.reason);
      // The BPF filter already matched the port; this guards against a filter that did not apply.
      if (frame.value.destPort !== port) return onDrop(FRAME_DROP.wrongPort);
      // The buffer is reused for the next frame: hand on a copy.
      onPacket(frame.value.payload.slice(), frame.value.source);
    });
    return handle;
  }
}

async function loadCap(): Promise<CapBinding> {
  return (await import('cap')).default;
}

function linkTypeOf(name: string): number | undefined {
  const known = LINK_TYPE_BY_NAME.get(name);
  if (known !== undefined) return known;
  const unknown = /^Unknown linktype (\d{1,5})$/.exec(name);
  return unknown?.[1] === undefined ? undefined : Number(unknown[1]);
}

/** Stops the libuv poll and closes the pcap handle at once; no packet is delivered after. */
function stop(handle: CapHandle): void {
  handle.removeAllListeners('packet');
  handle.close();
}

/** One line: the loader's message without its require stack, plus the fix for an addon built for another Node.js. */
function loadFailure(err: unknown): string {
  const text = errorMessage(err).split('\nRequire stack')[0] ?? '';
  const rebuild = err instanceof Error && 'code' in err && err.code === 'ERR_DLOPEN_FAILED' ? '; if Node.js changed since it was built: npm rebuild cap' : '';
  return `${text.replace(/\s+/g, ' ').trim()}${rebuild}`;
}

function firstLine(err: unknown): string {
  const text = errorMessage(err);
  return text.split('\n', 1)[0] ?? text;
}
