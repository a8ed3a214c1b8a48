// `sesame knock` and `sesame ssh-proxy`: build a knock from flags, profile and defaults, send it, optionally wait for the port and relay to it. Operator input: flags, config and key files.
import { parseAccessList } from '../protocol/access.ts';
import type { Access } from '../protocol/access.ts';
import { parseAddress } from '../protocol/address.ts';
import { parse } from './args.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { CEILING, DEFAULTS, WAIT } from '../limits.ts';
import { formatAccess } from '../protocol/access.ts';
import { WIRE } from '../protocol/layout.ts';
import { toHex } from '../protocol/bytes.ts';
import { knockAndWait, prepareKnock } from '../client/knocker.ts';
import { CONFIG_HELP, DEFAULT_TIMEOUT_SECONDS, defaultConfigPath, expandIdentity, expandPath, loadClientConfig, settingsFor } from '../client/profile.ts';
import type { KnockOptions, KnockSettings } from '../client/profile.ts';
import { relay } from '../client/relay.ts';
import { DEFAULT_CONFIRM_PORTS, formatRange, parseRange } from '../port-range.ts';
import type { PortRange } from '../port-range.ts';
import { openSender, resolveHost } from '../client/send.ts';
import type { Target } from '../client/send.ts';

/** Where text goes; tests pass their own. stdout is reserved for --print-packet, help, and ssh-proxy's byte stream. */
export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const KNOCK_HELP = `usage: sesame knock HOST|PROFILE [options]

Sends one knock (a signed, encrypted UDP packet) asking HOST to open ports for this machine's address.
The server never answers a knock; --wait checks that its firewall confirms this knock and that the port opened.

  -p, --ports LIST        ports to open: tcp/PORT or udp/PORT, comma-separated, at most ${WIRE.maxAccessEntries} (default tcp/22)
  -d, --duration SECONDS  how long they should stay open (default: the server's; its policy caps it)
      --open ADDRESS      open for ADDRESS instead of the knock's source address (behind NAT);
                          the server applies it only if your key may
  -i, --identity KEY      your key: a private key file (sesame or OpenSSH ed25519; a passphrase is asked on the
                          terminal), a public key file whose key is in ssh-agent (SSH_AUTH_SOCK), or an agent
                          key's SHA256:FINGERPRINT (default ~/.config/sesame/id_ed25519; "sesame keygen" makes it)
      --server-key FILE   the server's public key file ("sesame-x25519 BASE64 comment"), from its admin
      --knock-port N      the server's UDP knock port (default ${DEFAULTS.knockPort})
  -4, -6                  use IPv4 only / IPv6 only
      --wait              after knocking, wait until the server confirms the knock and the first tcp port
                          accepts a connection, re-knocking with a fresh packet while nothing is confirmed
      --confirm-ports A-B the server's confirmation range (default ${formatRange(DEFAULT_CONFIRM_PORTS)}): --wait names a
                          random port of it in the knock, and the server's kernel answers it with a reset
      --timeout SECONDS   how long --wait waits (default ${DEFAULT_TIMEOUT_SECONDS})
      --print-packet      write the knock as hex on stdout instead of sending it (HOST is not resolved)
      --config FILE       client config file (default ~/.config/sesame/config.json; $XDG_CONFIG_HOME honoured)
  -v, --verbose           say which identity and server key (with fingerprints) the knock uses, on stderr
  -h, --help              show this text

Each setting comes from, first match wins: the flags, then the profile named HOST in the config file,
then the defaults above. A HOST that names no profile is the host name (or IP address) to knock at.

${CONFIG_HELP}

Exit codes: 0 sent (with --wait: the server confirmed this knock and the port is open), ${EXIT.usage} bad command line, ${EXIT.config} bad config file, ${EXIT.key} key file missing or
unusable, ${EXIT.host} host does not resolve, ${EXIT.notOpened} nothing confirmed and the port did not open (--wait), ${EXIT.network} the knock
could not be sent, ${EXIT.notConfirmed} the port is reachable (an earlier grant) but the server did not confirm this knock (--wait).
`;

const SSH_PROXY_HELP = `usage: sesame ssh-proxy HOST PORT [options]

Knocks for tcp/PORT, waits until it accepts a connection, then relays stdin and stdout over that connection:
an ssh ProxyCommand.
  ssh -o ProxyCommand='sesame ssh-proxy %h %p' prod.example.com
or in ~/.ssh/config (%n, the name as typed, matches a profile named after an ssh alias):
  Host prod
      ProxyCommand sesame ssh-proxy %n %p

Options, as for "sesame knock" (flags, then the profile named HOST, whose "host" is the real host, then defaults):
  -i, --identity KEY  --server-key FILE  --knock-port N  -4  -6  -d, --duration SECONDS  --open ADDRESS
  --timeout SECONDS (default ${DEFAULT_TIMEOUT_SECONDS})  --confirm-ports A-B  --config FILE  -v, --verbose  -h, --help
The profile's "ports" are not used: the knock asks for tcp/PORT only.

It relays once the server confirmed the knock; if the port is reachable only through an earlier grant, it says on
stderr that this knock was not confirmed, and relays anyway.
Messages go to stderr; stdout carries only the connection's bytes. Exit ${EXIT.notOpened} if the port does not open.
`;

const STDIO: Io = { out: (t) => void process.stdout.write(t), err: (t) => void process.stderr.write(t) };

const COMMON = {
  identity: { type: 'string', short: 'i' },
  'server-key': { type: 'string' },
  'knock-port': { type: 'string' },
  ipv4: { type: 'boolean', short: '4' },
  ipv6: { type: 'boolean', short: '6' },
  duration: { type: 'string', short: 'd' },
  open: { type: 'string' },
  timeout: { type: 'string' },
  'confirm-ports': { type: 'string' },
  config: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
} as const;

const KNOCK = { ...COMMON, ports: { type: 'string', short: 'p' }, wait: { type: 'boolean' }, 'print-packet': { type: 'boolean' } } as const;

type CommonValues = ReturnType<typeof parse<typeof COMMON>>['values'];

const usage = (command: string, message: string): OperatorError => new OperatorError(`${message} (see sesame ${command} --help)`, EXIT.usage);

function integer(command: string, flag: string, text: string, min: number, max: number): number {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw usage(command, `${flag} ${JSON.stringify(text)}: expected a whole number from ${min} to ${max}`);
  return n;
}

/** The flags as typed options; anything malformed is a usage error naming the flag. */
function optionsFrom(command: string, v: CommonValues, access: readonly Access[] | undefined): KnockOptions {
  if (v.ipv4 === true && v.ipv6 === true) throw usage(command, '-4 and -6 exclude each other');
  const timeout = v.timeout === undefined ? undefined : /^\d{1,3}(\.\d{1,3})?$/.test(v.timeout) ? Number(v.timeout) : NaN;
  if (timeout !== undefined && !(timeout > 0 && timeout <= WAIT.maxTimeoutSeconds)) throw usage(command, `--timeout ${JSON.stringify(v.timeout)}: expected seconds, more than 0 and at most ${WAIT.maxTimeoutSeconds}`);
  const openAddress = v.open === undefined ? undefined : parseAddress(v.open);
  if (v.open !== undefined && openAddress === undefined) throw usage(command, `--open ${JSON.stringify(v.open)}: expected an IPv4 or IPv6 address`);
  const family = v.ipv4 === true ? 4 : v.ipv6 === true ? 6 : undefined;
  return {
    ...(family === undefined ? {} : { family }),
    ...(v['knock-port'] === undefined ? {} : { knockPort: integer(command, '--knock-port', v['knock-port'], 1, 65_535) }),
    ...(v['server-key'] === undefined ? {} : { serverKey: { kind: 'file', path: expandPath(v['server-key'], process.cwd()) } }),
    ...(v.identity === undefined ? {} : { identity: expandIdentity(v.identity, process.cwd()) }),
    ...(access === undefined ? {} : { access }),
    ...(v.duration === undefined ? {} : { durationSeconds: integer(command, '--duration', v.duration, 1, CEILING.durationSeconds) }),
    ...(openAddress === undefined ? {} : { openAddress }),
    ...(timeout === undefined ? {} : { timeoutSeconds: timeout }),
    ...(v['confirm-ports'] === undefined ? {} : { confirmPorts: rangeFlag(command, v['confirm-ports']) }),
  };
}

function rangeFlag(command: string, text: string): PortRange {
  const r = parseRange(text);
  if (!r.ok) throw usage(command, `--confirm-ports: ${r.why}`);
  return r.value;
}

function portsFlag(text: string | undefined): readonly Access[] | undefined {
  if (text === undefined) return undefined;
  let list: Access[];
  try {
    list = parseAccessList(text);
  } catch (err) {
    throw usage('knock', `--ports: ${errorMessage(err)}`);
  }
  const unique = list.filter((a, i) => list.findIndex((b) => b.proto === a.proto && b.port === a.port) === i);
  if (unique.length > WIRE.maxAccessEntries) throw usage('knock', `--ports: ${unique.length} ports, at most ${WIRE.maxAccessEntries} fit in one knock`);
  return unique;
}

async function settingsFrom(name: string, v: CommonValues, options: KnockOptions): Promise<{ settings: KnockSettings; configFile: string; profiles: string[] }> {
  const configFile = v.config ?? defaultConfigPath();
  const config = await loadClientConfig(configFile, v.config !== undefined);
  return { settings: settingsFor(name, options, config), configFile, profiles: [...(config?.profiles.keys() ?? [])] };
}

/** Starts resolving while the keys load; a key error still wins, because it is awaited first. */
function resolveEarly(s: KnockSettings): Promise<Target> {
  const target = resolveHost(s.host, s.family);
  target.catch(() => undefined);
  return target;
}

export async function knock(argv: string[], io: Io = STDIO): Promise<number> {
  const { values, positionals } = parse(argv, KNOCK, true);
  if (values.help === true) {
    io.out(KNOCK_HELP);
    return EXIT.ok;
  }
  const [name, extra] = positionals;
  if (name === undefined || extra !== undefined) throw usage('knock', 'expected one HOST or profile name');
  if (values.wait === true && values['print-packet'] === true) throw usage('knock', '--wait and --print-packet exclude each other');
  if (values.timeout !== undefined && values.wait !== true) throw usage('knock', '--timeout only applies with --wait');
  if (values['confirm-ports'] !== undefined && values.wait !== true) throw usage('knock', '--confirm-ports only applies with --wait');
  const options = optionsFrom('knock', values, portsFlag(values.ports));
  const { settings: s, configFile, profiles } = await settingsFrom(name, values, options);
  const tcp = s.access.find((a) => a.proto === 'tcp');
  if (values.wait === true && tcp === undefined) throw usage('knock', '--wait checks the first tcp port, and no tcp port is requested');
  const target = values['print-packet'] === true ? undefined : resolveEarly(s);
  const knocker = await prepareKnock(s, configFile, name, profiles);
  if (values.verbose === true) io.err(`sesame: ${knocker.used.replaceAll('\n', '\nsesame: ')}\n`);
  if (target === undefined) {
    io.out(`${toHex(await knocker.build())}\n`);
    return EXIT.ok;
  }
  const t = await target;
  const what = s.access.map(formatAccess).join(',');
  if (values.wait !== true || tcp === undefined) {
    const sender = openSender(t, s.knockPort);
    try {
      await sender.send(await knocker.build());
    } finally {
      sender.close();
    }
    io.err(`sesame: knocked ${t.host} (${t.address}) at UDP port ${s.knockPort} for ${what}\n`);
    return EXIT.ok;
  }
  const opened = await knockAndWait(s, knocker, t, tcp.port);
  opened.socket.destroy();
  io.err(`sesame: ${opened.message.replaceAll('\n', '\nsesame: ')}\n`);
  return opened.verdict === 'confirmed' ? EXIT.ok : EXIT.notConfirmed;
}

export async function sshProxy(argv: string[], io: Io = STDIO): Promise<number> {
  const { values, positionals } = parse(argv, COMMON, true);
  if (values.help === true) {
    io.out(SSH_PROXY_HELP);
    return EXIT.ok;
  }
  const [name, portText, extra] = positionals;
  if (name === undefined || portText === undefined || extra !== undefined) throw usage('ssh-proxy', 'expected HOST PORT');
  const port = integer('ssh-proxy', 'PORT', portText, 1, 65_535);
  const options = optionsFrom('ssh-proxy', values, [{ proto: 'tcp', port }]);
  const { settings: s, configFile, profiles } = await settingsFrom(name, values, options);
  const target = resolveEarly(s);
  const knocker = await prepareKnock(s, configFile, name, profiles);
  if (values.verbose === true) io.err(`sesame: ${knocker.used.replaceAll('\n', '\nsesame: ')}\n`);
  const opened = await knockAndWait(s, knocker, await target, port);
  // Relayed either way (the port is reachable), but a knock the server did not confirm is said plainly.
  if (opened.verdict !== 'confirmed' || values.verbose === true) io.err(`sesame: ${opened.message.replaceAll('\n', '\nsesame: ')}\n`);
  return relay(opened.socket, process.stdin, process.stdout, (line) => io.err(`sesame: ${line}\n`));
}
