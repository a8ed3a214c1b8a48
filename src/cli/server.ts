// `sesame server`: run the daemon, `server init DIR`, `--check` and `--cleanup`. Operator input: flags and the config file.
import { mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hostname } from 'node:os';
import { DEFAULT_SERVER_CONFIG, parse } from './args.ts';
import { formatAccess } from '../protocol/access.ts';
import { loadConfig } from '../server/config.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { check } from './check.ts';
import { generateServerKeys } from '../protocol/keys.ts';
import { writeFileAtomic } from '../files.ts';
import { formatKeyLine, KEY_TYPE, writeKeyPair } from '../protocol/keyfile.ts';
import { DEFAULTS } from '../limits.ts';
import { cleanup } from '../server/nftables.ts';
import { runServer } from '../server/daemon.ts';
import { loadSodium } from '../protocol/sodium.ts';

const HELP = `usage: sesame server [-c CONFIG] [--capture udp|pcap] [--interface NAME]...
       sesame server init DIR
       sesame server [-c CONFIG] --check
       sesame server [-c CONFIG] --cleanup

Runs the sesame daemon in the foreground, logging JSON lines on stdout, until SIGTERM or SIGINT.
It never answers a knock. Valid knocks add elements with a kernel-enforced timeout to its own
nftables table (inet sesame); it touches nothing else.

  -c, --config FILE     server config (default ${DEFAULT_SERVER_CONFIG}); schema: src/schema/config.schema.json
      --capture MODE    override the config's capture mode for this run: udp (dgram socket) or pcap (passive)
      --interface NAME  pcap mode: interface to sniff (repeatable; default: the config's, or "any")
      --check           like sshd -t: config, users file (every error), file ownership and modes, server key
                        (its fingerprint), nftables usable with this process's rights, capture, state
                        directory; prints every problem and exits non-zero on any
      --cleanup         delete the nftables table (protected ports open to all again) and exit
  -h, --help            show this text

  init DIR              create DIR (0700) with config.json, server.key (0600), server.pub and an empty
                        users.json, knock port ${DEFAULTS.knockPort}, protecting tcp/22; refuses an existing setup

On stop (SIGTERM/SIGINT, or a crash) the table stays: protected ports stay closed and open grants
expire at their timeout in the kernel. "sesame server --cleanup" removes the table.
SIGHUP (or any change to the users file) reloads the users file; revoked keys lose their open grants at once.
`;

export async function server(argv: string[]): Promise<number> {
  if (argv[0] === 'init') return init(argv.slice(1));
  const { values } = parse(argv, {
    config: { type: 'string', short: 'c' },
    check: { type: 'boolean' },
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
  if (values.check === true) return check(config);
  const running = await runServer(config);
  const onSignal = (): void => void running.stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await running.stopped;
  return EXIT.ok;
}

async function init(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean' } }, true);
  if (values.help === true || positionals.length !== 1) {
    process.stdout.write(HELP);
    return values.help === true ? EXIT.ok : EXIT.usage;
  }
  const dir = resolve(positionals[0] ?? '');
  let existing: string[] = [];
  try {
    existing = readdirSync(dir);
  } catch {
    // does not exist yet: created below
  }
  const clash = existing.filter((n) => ['config.json', 'server.key', 'server.pub', 'users.json'].includes(n));
  if (clash.length > 0) throw new OperatorError(`${dir} already holds a sesame setup (${clash.join(', ')}); not overwriting it`, EXIT.config);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await loadSodium();
  const keys = generateServerKeys();
  const comment = `sesame server ${hostname()}`;
  writeKeyPair(join(dir, 'server.key'), formatKeyLine(KEY_TYPE.serverSecret, keys.secretKey, comment), formatKeyLine(KEY_TYPE.serverPublic, keys.publicKey, comment), false, join(dir, 'server.pub'));
  writeFileAtomic(join(dir, 'users.json'), `${JSON.stringify({ users: {} }, null, 2)}\n`, { mode: 0o600, replace: false });
  const config = {
    knockPort: DEFAULTS.knockPort,
    listen: ['0.0.0.0', '::'],
    serverKey: 'server.key',
    usersFile: 'users.json',
    stateDir: 'state',
    freshnessWindowSeconds: DEFAULTS.freshnessWindowMs / 1000,
    defaultDurationSeconds: DEFAULTS.defaultDurationSeconds,
    maxDurationSeconds: DEFAULTS.maxDurationSeconds,
    protect: ['tcp/22'],
    logLevel: 'info',
  };
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, replace: false });
  mkdirSync(join(dir, 'state'), { recursive: true, mode: 0o700 });
  process.stdout.write(
    `Created ${dir}:\n  config.json  knock port ${DEFAULTS.knockPort}, protecting tcp/22\n  server.key   server private key (0600)\n  server.pub   give this to your users\n  users.json   no users yet: sesame user add NAME --key FILE -c ${join(dir, 'config.json')}\n` +
      `Check it with: sesame server -c ${join(dir, 'config.json')} --check\n`,
  );
  return EXIT.ok;
}
