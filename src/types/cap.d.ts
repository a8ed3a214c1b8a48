// The part of the optional 'cap' package (libpcap binding, CommonJS, no types of its own) that capture-pcap.ts uses.
declare module 'cap' {
  namespace cap {
    interface DeviceAddress {
      readonly addr: string;
      readonly netmask?: string;
      readonly broadaddr?: string;
    }
    interface Device {
      readonly name: string;
      readonly description?: string;
      readonly addresses: readonly DeviceAddress[];
      readonly flags?: string;
    }
    class Cap {
      /**
       * Opens a live capture (promiscuous, immediate mode on Linux, nonblocking) and returns the link type as a name:
       * 'ETHERNET', 'LINKTYPE_LINUX_SLL', 'RAW', 'NULL', 'IEEE802_11_RADIO' or 'Unknown linktype <n>'.
       * Each packet is copied into `buffer` (truncated to its length) before the 'packet' event.
       */
      open(device: string, filter: string, ringBytes: number, buffer: Buffer): string;
      /** True if a handle was open. */
      close(): boolean;
      on(event: 'packet', listener: (bytes: number, truncated: boolean) => void): this;
      removeAllListeners(event?: 'packet'): this;
      static deviceList(): Device[];
      static findDevice(ip?: string): string | undefined;
    }
  }
  export = cap;
}
