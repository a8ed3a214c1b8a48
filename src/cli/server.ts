// `sesame server`: run the daemon, `server init DIR`, `--check` and `--cleanup`. Operator input: flags and the config file.
import { resolve } from 'node:path';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { formatAccess } from '../protocol/access.ts';
import { loadConfig } from '../server/config.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { check } from './check.ts';
import { daemonAccount, init } from './init.ts';
import { cleanup } from '../server/nftables.ts';
import { runServer } from '../server/daemon.ts';
import { DEFAULTS } from '../limits.ts';

export const HELP = `usage: sesame server [-c CONFIG] [--capture udp|pcap] [--interface NAME]...
       sesame server init DIR [--state-dir DIR] [--user NAME] [--public-host HOST]
       sesame server [-c CONFIG] --check [--user NAME]
       sesame server [-c CONFIG] --cleanup

Runs the sesame daemon in the foreground, logging JSON lines on stdout, until SIGTERM or SIGINT.
It never answers a knock. Valid knocks add elements with a kernel-enforced timeout to its own
nftables table (inet sesame); it touches nothing else.

  -c, --config FILE     server config (default ${DEFAULT_SERVER_CONFIG}); schema: src/schema/config.schema.json
      --capture MODE    override the config's capture mode for this run: udp (dgram socket) or pcap (passive)
      --interface NAME  pcap mode: interface to sniff (repeatable; default: the config's, or "any")
      --check           like sshd -t: config, users file (every error), file ownership and modes, server key
                        (its fingerprint), nftables usable with this process's rights, capture, state
                        directory; prints every problem and exits non-zero on any; --user NAME checks file
                        ownership as the daemon running as NAME would (root runs the check, sesame the daemon)
      --cleanup         delete the nftables table (protected ports open to all again) and exit
  -h, --help            show this text

  init DIR              create DIR with config.json (knock port ${DEFAULTS.knockPort}, protecting tcp/22), server.key,
                        server.pub, an empty users.json, and the state directory; refuses an existing setup.
                        Run by root for the daemon's user (--user, default "sesame" if that user exists):
                        DIR root:GROUP 0750, config.json and users.json root:GROUP 0640 (readable, not
                        writable, by the daemon), server.key USER 0600, the state directory USER 0700.
                        Otherwise all of it is private to whoever runs init (0700, 0600): run the daemon as them.
    --state-dir DIR     where the daemon keeps its replay record (default ${DEFAULTS.stateDir})
    --user NAME         the account the daemon runs as ("root": root-only files)
    --public-host HOST  the name or address users knock at, written as "publicHost": sesame user add
                        then prints the new user's invitation without --host

On stop (SIGTERM/SIGINT, or a crash) the table stays: protected ports stay closed and open grants
expire at their timeout in the kernel. "sesame server --cleanup" removes the table.
SIGHUP (or any change to the users file) reloads the users file; revoked keys lose their open grants at once.
`;

export async function server(argv: string[]): Promise<number> {
  if (argv[0] === 'init') return init(argv.slice(1));
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    check: { type: 'boolean' },
    user: { type: 'string' },
    cleanup: { type: 'boolean' },
    capture: { type: 'string' },
    interface: { type: 'string', multiple: true },
  }, false);
  if (values.help === true) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const file = resolve(values.config ?? DEFAULT_SERVER_CONFIG);
  let config = loadConfig(file);
  if (values.capture !== undefined || values.interface !== undefined) {
    const mode = values.capture ?? config.capture.mode;
    if (mode !== 'udp' && mode !== 'pcap') throw new OperatorError(`--capture: expected udp or pcap, got "${mode}"`, EXIT.usage);
    config = { ...config, capture: { mode, interfaces: values.interface ?? config.capture.interfaces } };
  }
  if (values.cleanup === true) {
    try {
      await cleanup(config.table);
    } catch (err) {
      const why = errorMessage(err);
      const hint = /ENOENT/.test(why) ? ' (is nftables installed? apt-get install nftables)' : /Operation not permitted|EPERM/.test(why) ? ' (run it as root)' : '';
      throw new OperatorError(`cannot remove nftables table inet ${config.table}: ${why}${hint}`, EXIT.firewall);
    }
    process.stdout.write(`removed nftables table inet ${config.table} (if it existed); ${config.protect.map(formatAccess).join(', ')} no longer guarded\n`);
    return EXIT.ok;
  }
  if (values.user !== undefined && values.check !== true) throw new OperatorError('--user goes with --check (whose files would the daemon trust)', EXIT.usage);
  if (values.check === true) return check(config, values.user === undefined ? undefined : daemonAccount(values.user)?.uid);
  const running = await runServer(config);
  const onSignal = (): void => void running.stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await running.stopped;
  return EXIT.ok;
}
