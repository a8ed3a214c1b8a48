// Access requests ("tcp/22"): the protocol/port pairs a knock asks for and a policy allows. Parses operator text only.

const PROTOCOLS = ['tcp', 'udp'] as const;
export type Proto = (typeof PROTOCOLS)[number];

export interface Access {
  readonly proto: Proto;
  readonly port: number;
}

export const isProto = (s: string): s is Proto => s === 'tcp' || s === 'udp';

export const isPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65_535;

export const formatAccess = (a: Access): string => `${a.proto}/${a.port}`;

export const sameAccess = (a: Access, b: Access): boolean => a.proto === b.proto && a.port === b.port;

/** "tcp/22" or "udp/51820" -> Access; a bare "22" means tcp. */
export function parseAccess(text: string): Access | undefined {
  const m = /^(?:(tcp|udp)\/)?(\d{1,5})$/.exec(text.trim());
  if (m === null) return undefined;
  const port = Number(m[2]);
  if (!isPort(port)) return undefined;
  return { proto: m[1] === 'udp' ? 'udp' : 'tcp', port };
}

/** "tcp/22,udp/51820" -> Access[]; throws with the offending item for operator input. */
export function parseAccessList(text: string): Access[] {
  const items = text.split(',').filter((s) => s.trim() !== '');
  if (items.length === 0) throw new Error(`no ports in "${text}" (expected e.g. tcp/22,udp/51820)`);
  return items.map((item) => {
    const access = parseAccess(item);
    if (access === undefined) throw new Error(`"${item.trim()}" is not a port (expected tcp/PORT or udp/PORT, PORT 1-65535)`);
    return access;
  });
}
