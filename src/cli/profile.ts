// `sesame profile import`: turns an admin's invitation line into a profile in the client config, keeping every other profile. Operator input: the pasted line, flags, the config file.
import { lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from './args.ts';
import { errorMessage, EXIT, OperatorError } from '../errors.ts';
import { fileExists, FileExistsError, parseJson, readOptionalText, writeFileAtomic } from '../files.ts';
import { formatAccess } from '../protocol/access.ts';
import { formatKeyLine, KEY_TYPE } from '../protocol/keyfile.ts';
import { fingerprint } from '../protocol/keys.ts';
import { printable } from '../text.ts';
import { parseInvitation } from '../client/invite.ts';
import type { Invitation } from '../client/invite.ts';
import { checkClientConfig, DEFAULT_IDENTITY, defaultConfigPath, PROFILE_NAME } from '../client/profile.ts';
import type { ClientConfigFile, ProfileEntry } from '../client/profile.ts';

const HELP = `usage: sesame profile import LINE [--name NAME] [--config FILE] [--force]

Writes the profile an invitation describes into your client config, keeping the other profiles. The
invitation is the one line "sesame-invite:1:..." that the server's admin prints with
"sesame user add NAME --key KEY --host HOST" or "sesame user invite NAME --host HOST": the server's
host, knock port and public key(s), and the ports you may open. It holds no secret.

  --name NAME     the profile's name (default: the invitation's host); name it after your ssh alias
                  for "ProxyCommand sesame ssh-proxy %n %p"
  --config FILE   client config file (default ~/.config/sesame/config.json, created if missing;
                  $XDG_CONFIG_HOME honoured)
  --force         replace a profile of that name: host, knockPort, serverKeys and ports come from
                  the invitation, your own settings (identity, durationSeconds, ...) stay
  -h, --help      show this text

Every field is checked; a line that is damaged, of another version, or holds anything unexpected is
refused, naming the field, and nothing is written. The file is replaced atomically. Compare the
server key fingerprint printed here with the one your admin sees.
`;

const usage = (message: string): OperatorError => new OperatorError(`${message} (see sesame profile --help)`, EXIT.usage);

export async function profile(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { name: { type: 'string' }, config: { type: 'string' }, force: { type: 'boolean' } }, true);
  const [action, line, ...extra] = positionals;
  if (values.help === true || action === undefined) {
    process.stdout.write(HELP);
    return values.help === true ? EXIT.ok : EXIT.usage;
  }
  if (action !== 'import') throw usage(`unknown action "${action}" (import)`);
  if (line === undefined || extra.length > 0) throw usage('expected one invitation LINE');
  const parsed = parseInvitation(line);
  if (!parsed.ok) throw new OperatorError(`invitation: ${parsed.reason}; nothing was written`, EXIT.usage);
  const inv = parsed.value;
  const name = values.name ?? inv.host;
  if (!PROFILE_NAME.test(name)) {
    throw usage(values.name === undefined ? `the host ${inv.host} cannot name a profile: pass --name NAME` : `--name ${JSON.stringify(name)}: expected letters, digits, '.', '_', '-', at most 64, starting with a letter or digit`);
  }
  const file = realTarget(resolve(values.config ?? defaultConfigPath()));
  const text = readOptionalText(file, 'config file', EXIT.config);
  // An existing file must load as it is: a broken one is the user's to fix, not ours to rewrite.
  const doc: ClientConfigFile = text === undefined ? { $schema: schemaRef(), profiles: {} } : (await checkClientConfig(parseJson(text, file, EXIT.config), file)).doc;
  const profiles = (doc.profiles ??= {});
  const old = Object.hasOwn(profiles, name) ? profiles[name] : undefined;
  if (old !== undefined && values.force !== true) {
    throw new OperatorError(`${file} already has a profile "${name}"; not replacing it (--force replaces what the invitation sets, --name picks another name); nothing was written`, EXIT.config);
  }
  profiles[name] = entryFor(inv, old);
  const out = `${JSON.stringify(doc, null, 2)}\n`;
  await checkClientConfig(JSON.parse(out), file); // what is written loads as sesame knock will load it
  write(file, out, text === undefined);
  process.stdout.write(`${report(name, file, inv, old !== undefined, old?.identity !== undefined).map(printable).join('\n')}\n`);
  return EXIT.ok;
}

/** The invitation's fields over the old profile's; the old single "serverKey" gives way to the invitation's keys. */
function entryFor(inv: Invitation, old: ProfileEntry | undefined): ProfileEntry {
  const entry: ProfileEntry = {
    ...old,
    host: inv.host,
    knockPort: inv.knockPort,
    serverKeys: inv.serverKeys.map((k) => formatKeyLine(KEY_TYPE.serverPublic, k, inv.host).trim()),
    ports: inv.access.map(formatAccess),
  };
  delete entry.serverKey;
  return entry;
}

/** A config file that is a symbolic link (dotfiles) is written where it points, leaving the link in place. */
function realTarget(path: string): string {
  try {
    return lstatSync(path).isSymbolicLink() ? realpathSync(path) : path;
  } catch {
    return path;
  }
}

/** The schema of the installed package, for editors: dist/src/cli/ and src/cli/ both reach <package>/src/schema/. */
function schemaRef(): string {
  const built = new URL('.', import.meta.url).pathname.includes('/dist/src/');
  return new URL(built ? '../../../src/schema/client.schema.json' : '../schema/client.schema.json', import.meta.url).href;
}

function write(file: string, text: string, create: boolean): void {
  try {
    if (create) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileAtomic(file, text, { mode: 0o600, replace: false });
    } else {
      writeFileAtomic(file, text, { mode: statSync(file).mode & 0o777, replace: true });
    }
  } catch (err) {
    if (err instanceof FileExistsError) throw new OperatorError(`${file} appeared while this ran; nothing was written: run the import again`, EXIT.config);
    throw new OperatorError(`cannot write ${file}: ${errorMessage(err)}; nothing was written`, EXIT.config);
  }
}

function report(name: string, file: string, inv: Invitation, replaced: boolean, ownIdentity: boolean): string[] {
  const [first, ...others] = inv.serverKeys;
  return [
    `${replaced ? 'replaced' : 'wrote'} profile "${name}" in ${file}: host ${inv.host}, knock port ${inv.knockPort}, ports ${inv.access.map(formatAccess).join(', ')}`,
    `server key ${first === undefined ? '?' : fingerprint(first)} (knocks use it)${others.map((k) => `, also ${fingerprint(k)}`).join('')}: compare with your admin's`,
    ...(ownIdentity || fileExists(DEFAULT_IDENTITY()) ? [] : [`no identity key at ${DEFAULT_IDENTITY()} yet: create one with "sesame keygen", send its .pub line to your admin, or set "identity" in the profile`]),
    `knock with:  sesame knock ${name} --wait`,
    'or let ssh knock, in ~/.ssh/config:',
    `  Host ${name}`,
    ...(name === inv.host ? [] : [`      HostName ${inv.host}`]),
    '      ProxyCommand sesame ssh-proxy %n %p',
  ];
}
