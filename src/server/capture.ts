// The capture interface: where knock packets come from. Two implementations: a dgram socket (capture-udp.ts) and passive libpcap sniffing (capture-pcap.ts).
import type { Address } from '../protocol/address.ts';

/** Called once per received UDP payload addressed to the knock port. Must not throw. */
export type OnPacket = (payload: Uint8Array, source: Address) => void;

export interface Capture {
  /** Begins delivering packets; rejects with a clear operator error if the source cannot be opened. */
  start(onPacket: OnPacket): Promise<void>;
  /** Stops delivering packets and releases the socket or handle. */
  close(): Promise<void>;
}
