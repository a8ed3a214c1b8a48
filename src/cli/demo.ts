// `sesame demo`: its help and flags (none besides --help); the demo itself is src/demo/run.ts. Operator input: the command line.
import { parse } from './args.ts';
import { EXIT } from '../errors.ts';
import { runDemo } from '../demo/run.ts';
import { CLIENT, PORT, SERVER } from '../demo/steps.ts';

const HELP = `usage: sesame demo

Runs a narrated demo as root on Linux with nftables, in about 12 s: two throwaway network namespaces
(${SERVER.ns} ${SERVER.ip}, ${CLIENT.ns} ${CLIENT.ip}), a fresh server key and user key, the real daemon
guarding a TCP service on port ${PORT}, and the real client: port closed, knock, port open, replay refused,
user revoked, grant expired. Everything it creates is removed at the end, also on Ctrl-C or failure;
the host's own interfaces and firewall are never touched.
`;

export async function demo(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, false);
  if (values.help === true) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  return runDemo();
}
