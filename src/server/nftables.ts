// Step 10 of the packet path, nftables backend: sesame's own `inet` table, whose map elements (kernel-enforced timeouts, owner as mark and comment) are the grants, fed through one long-lived `nft -i`. Trusts its typed inputs (re-checked by nft-rules.ts) and nft's JSON only through nft-read.ts.
import { spawn } from 'node:child_process';
import { errorMessage } from '../errors.ts';
import { NFT, TABLE } from '../limits.ts';
import { commandLineOf, startTicksOf } from '../process.ts';
import type { ProcessId } from '../process.ts';
import type { Address } from '../protocol/address.ts';
import type { AdmittedConnection, Firewall, Grant, LiveGrant, TableSetup } from './firewall.ts';
import { GrantBookFullError, TableInUseError } from './firewall.ts';
import { EMPTY_TABLE, readTable } from './nft-read.ts';
import type { TableView } from './nft-read.ts';
import { confirmCommand } from './nft-confirm.ts';
import { checkTable, closeCommand, cutCommand, grantCommand, releaseCommand, replaceCommand, revokedMarksCommand, setupScript, tokensCommand } from './nft-rules.ts';
import { NFT_ENV, NftInteractive } from './nft-session.ts';
import type { TokenElement } from './tokens.ts';

export interface NftablesOptions {
  /** Name of the `inet` table sesame owns; lowercase letters, digits, underscore. */
  readonly table?: string;
  readonly nftPath?: string;
  /** A command that is not acknowledged in this time kills nft and fails. */
  readonly commandTimeoutMs?: number;
}

/** An owner claim names a running process if its pid runs with that start time (stored modulo 2^32). */
const isRunning = (p: ProcessId): boolean => (startTicksOf(p.pid) ?? -1) % 2 ** 32 === p.startTicks % 2 ** 32;
const sameProcess = (a: ProcessId, b: ProcessId): boolean => a.pid === b.pid && a.startTicks % 2 ** 32 === b.startTicks % 2 ** 32;
const sameTarget = (a: LiveGrant, b: LiveGrant): boolean => a.address.text === b.address.text && a.access.proto === b.access.proto && a.access.port === b.access.port;

/** The Firewall for nftables. Each instance owns one long-lived nft process, started on first use. */
export class NftablesFirewall implements Firewall {
  readonly table: string;
  readonly #nftPath: string;
  readonly #nft: NftInteractive;
  #claimed: ProcessId | undefined;

  constructor(options: NftablesOptions = {}) {
    this.table = checkTable(options.table ?? TABLE.defaultName);
    this.#nftPath = options.nftPath ?? 'nft';
    this.#nft = new NftInteractive(this.#nftPath, options.commandTimeoutMs ?? NFT.commandTimeoutMs);
  }

  async setup(s: TableSetup): Promise<void> {
    // Read-only first: another daemon's table is never touched. The claim itself is atomic (see setupScript).
    for (let attempt = 1; ; attempt++) {
      const view = await this.read();
      const other = view.owners.find((p) => isRunning(p) && !sameProcess(p, s.daemon));
      if (other !== undefined) {
        throw new TableInUseError(`nftables table inet ${this.table} is managed by another sesame daemon, pid ${other.pid} (${commandLineOf(other.pid)}); this one does not touch it (use another "firewall.table" to run both)`);
      }
      try {
        await runNft(this.#nftPath, ['-f', '-'], setupScript(this.table, s, { staleOwners: view.owners.filter((p) => !isRunning(p)), legacySets: view.legacySets, alreadyOwner: view.owners.some((p) => sameProcess(p, s.daemon)) }));
        break;
      } catch (err) {
        // Another daemon claimed the table (or cleared a stale claim) between our read and our write: read again.
        if (attempt < 3 && /File exists|No such file or directory/.test(errorMessage(err))) continue;
        throw err;
      }
    }
    this.#claimed = s.daemon;
    this.#nft.warm();
  }

  /** Checks the set-up transaction against the running kernel without applying it (nft -c), as `sesame server --check` does. */
  async check(s: TableSetup): Promise<void> {
    const view = await this.read();
    await runNft(this.#nftPath, ['-c', '-f', '-'], setupScript(this.table, s, { staleOwners: [], legacySets: view.legacySets, alreadyOwner: true }));
  }

  async grant(grants: readonly Grant[]): Promise<void> {
    const line = grantCommand(this.table, grants);
    if (line === '') return;
    try {
      await this.#nft.run(line);
    } catch (err) {
      const why = errorMessage(err);
      // ENFILE is what the kernel says when a map is at its size.
      if (/Too many open files in system/.test(why)) throw new GrantBookFullError(`the grant maps are full (limits.maxGrants): ${why}`);
      // A target already open under another key: replace its owner.
      if (!/File exists/.test(why)) throw err;
      await this.#nft.run(replaceCommand(this.table, grants));
    }
  }

  async confirm(address: Address, port: number): Promise<void> {
    await this.#nft.run(confirmCommand(this.table, address, port));
  }

  async close(grants: readonly LiveGrant[]): Promise<void> {
    const line = closeCommand(this.table, grants);
    if (line === '') return;
    try {
      await this.#nft.run(line);
    } catch (err) {
      if (!/File exists/.test(errorMessage(err))) throw err;
      // A target changed owner since it was read: close only what the same key still holds.
      const still = (await this.list()).filter((g) => grants.some((x) => sameTarget(x, g) && x.owner.keyIdHex === g.owner.keyIdHex));
      const retry = closeCommand(this.table, still);
      if (retry !== '') await this.#nft.run(retry);
    }
  }

  async list(): Promise<LiveGrant[]> {
    return [...(await this.read()).grants];
  }

  async setRevokedMarks(marks: readonly number[]): Promise<void> {
    await this.#nft.run(revokedMarksCommand(this.table, marks));
  }

  async setTokens(tokens: readonly TokenElement[]): Promise<void> {
    await this.#nft.run(tokensCommand(this.table, tokens));
  }

  async cut(match: (c: AdmittedConnection) => boolean): Promise<number> {
    const ids = (await this.read()).admitted.filter(match).map((c) => c.ctId);
    const line = cutCommand(this.table, ids);
    if (line !== '') await this.#nft.run(line);
    return ids.length;
  }

  /** Everything in the table, or an empty view if there is no table. */
  async read(): Promise<TableView> {
    try {
      return readTable((await runNft(this.#nftPath, ['-j', 'list', 'table', 'inet', this.table])).stdout);
    } catch (err) {
      if (/No such file or directory/.test(errorMessage(err)) && !/spawn/.test(errorMessage(err))) return EMPTY_TABLE;
      throw err;
    }
  }

  async stop(): Promise<void> {
    const me = this.#claimed;
    this.#claimed = undefined;
    if (me !== undefined) await this.#nft.run(releaseCommand(this.table, me)).catch(() => undefined);
    await this.#nft.close();
  }
}

interface NftOutput { readonly stdout: string; readonly stderr: string }

/** One nft invocation with an argument array (never a shell); rejects with nft's message on a non-zero exit. */
function runNft(nftPath: string, args: readonly string[], input?: string): Promise<NftOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(nftPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: NFT_ENV });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s; });
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`nft ${args.join(' ')} failed (exit ${code}): ${stderr.trim()}`));
    });
    child.stdin.end(input ?? '');
  });
}

/** The host's whole ruleset as `nft -j` JSON, every table (read-only; dnat.ts reads its NAT rules). */
export async function listRuleset(nftPath = 'nft'): Promise<string> {
  return (await runNft(nftPath, ['-j', 'list', 'ruleset'])).stdout;
}

/** Deletes sesame's table and every grant in it; succeeds if it is already gone (`sesame server --cleanup`). */
export async function cleanup(table: string = TABLE.defaultName, nftPath = 'nft'): Promise<void> {
  const t = `inet ${checkTable(table)}`;
  await runNft(nftPath, ['-f', '-'], `add table ${t}\ndelete table ${t}\n`);
}
