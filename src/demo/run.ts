// `sesame demo`'s run: preflight, then the steps (steps.ts), and cleanup on success, failure, Ctrl-C and crash, with the closing summary. Trusts only what it started; removes only the sesame-demo-* namespaces, the programs it started and its own temp dir.
import { rmSync } from 'node:fs';
import { errorMessage, EXIT } from '../errors.ts';
import { killStarted, listNamespaces, missingTool, removeNamespace, stopStarted } from '../harness/netns.ts';
import { Narrator } from './narrator.ts';
import { CLIENT, Missing, PREFIX, SERVER, steps } from './steps.ts';
import type { Run } from './steps.ts';

/** An operator-fixable reason the demo cannot run here, or undefined. */
function preflight(): string | undefined {
  if (process.platform !== 'linux') return `the demo needs Linux (network namespaces and nftables); this is ${process.platform}`;
  if (Number(process.versions.node.split('.')[0]) < 20) return `the demo needs Node.js 20 or newer; this is ${process.version}`;
  if (process.getuid?.() !== 0) return 'not running as root, which creating network namespaces and nftables rules needs; run it as root: sudo npm run demo';
  return missingTool();
}

/** Ends everything the demo started, deletes both namespaces (and with the server's, the daemon's nftables table) and the temp dir. Synchronous and idempotent. */
function cleanupSync(r: Run): void {
  if (r.cleaned) return;
  r.cleaned = true;
  r.say.interrupt();
  killStarted();
  removeNamespace(SERVER.ns);
  removeNamespace(CLIENT.ns);
  if (r.dir !== undefined) rmSync(r.dir, { recursive: true, force: true });
}

/** The normal way out: let the daemon stop on SIGTERM (it logs server.stopped), then remove the rest. */
async function cleanup(r: Run): Promise<void> {
  const daemon = r.daemon;
  if (daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2_000);
      daemon.once('exit', () => resolve(clearTimeout(timer)));
      daemon.kill('SIGTERM');
    });
  }
  await stopStarted();
  cleanupSync(r);
}

/** Runs the whole demo; returns the exit code. */
export async function runDemo(): Promise<number> {
  const missing = preflight();
  if (missing !== undefined) {
    process.stderr.write(`sesame demo cannot run here: ${missing}\n`);
    return EXIT.failure;
  }
  const r: Run = { say: new Narrator(), started: performance.now(), dir: undefined, daemon: undefined, step: 'setup', cleaned: false };
  const onSignal = (signal: NodeJS.Signals): void => {
    r.say.interrupt();
    process.stdout.write(`${signal}: stopping the demo and removing what it created ...\n`);
    cleanupSync(r);
    process.stdout.write(`${leftText() ?? cleanedText(r)}\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  const onCrash = (err: unknown): void => {
    r.say.interrupt();
    process.stderr.write(`sesame demo: internal error at ${r.step}: ${err instanceof Error ? (err.stack ?? err.message) : errorMessage(err)}\n`);
    cleanupSync(r);
    process.exit(EXIT.failure);
  };
  const onExit = (): void => cleanupSync(r);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('uncaughtException', onCrash);
  process.on('exit', onExit);
  let code: number = EXIT.ok;
  try {
    await steps(r);
  } catch (err) {
    r.say.interrupt();
    const message = errorMessage(err);
    process.stderr.write(err instanceof Missing ? `sesame demo cannot run here: ${message}\n` : `sesame demo failed at ${r.step}: ${message}\n`);
    code = EXIT.failure;
  } finally {
    await cleanup(r);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('uncaughtException', onCrash);
    process.off('exit', onExit);
  }
  const left = leftText();
  if (left !== undefined) {
    process.stderr.write(`${left}\n`);
    return EXIT.failure;
  }
  if (code === EXIT.ok) r.say.line(summary(r));
  r.say.line(cleanedText(r));
  return code;
}

/** Said only if the namespaces survived the cleanup (something outside the demo holds them). */
function leftText(): string | undefined {
  const left = listNamespaces(PREFIX);
  return left.length === 0 ? undefined : `sesame demo: could not delete network namespace(s) ${left.join(', ')}: remove them with "ip netns delete NAME"`;
}

function cleanedText(r: Run): string {
  return `Cleaned up: processes stopped, namespaces ${SERVER.ns} and ${CLIENT.ns} deleted (the daemon's nftables table lived only in ${SERVER.ns})${r.dir === undefined ? '' : `, ${r.dir} removed`}. The host's interfaces and firewall were not touched.`;
}

function summary(r: Run): string {
  return [
    '',
    `All 6 steps done in ${((performance.now() - r.started) / 1000).toFixed(1)} s: closed by default; one knock opened one port for one address, for a limited time;`,
    'the replayed packet was refused; revoking the user closed access at once; the last grant expired in the kernel.',
    '',
    'Next, in README.md: "Everyday use: from `sesame keygen` to ssh" (your own keys and servers), "Managing users",',
    '"Running a server" (config, firewall, logs) and "Protocol (version 1)".',
  ].join('\n');
}
