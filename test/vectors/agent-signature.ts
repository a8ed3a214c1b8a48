// The agent-signature vector: a fixture Ed25519 key made from a label, one knock's signed message, and its signature. `node dist/test/vectors/agent-signature.js` rewrites test/vectors/agent-signature.json; commit the result.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { serverPublicKey, toHex } from '../../src/protocol/bytes.ts';
import { encodePayload, signedMessage } from '../../src/protocol/build.ts';
import { userKeysFromSeed } from '../../src/protocol/keys.ts';
import { loadSodium, sodium } from '../../src/protocol/sodium.ts';

export const FIXTURE_KEY_LABEL = 'sesame test fixture: agent-signature user key (not a real key)';
const SERVER_LABEL = 'sesame test fixture: agent-signature server key (not a real key)';

export interface AgentVector {
  readonly description: string;
  readonly keyLabel: string;
  readonly seedRule: string;
  readonly publicKey: string;
  readonly message: string;
  readonly signature: string;
}

export const fixtureSeed = (): Uint8Array => new Uint8Array(createHash('sha256').update(FIXTURE_KEY_LABEL).digest());

/** Deterministic: Ed25519 signatures are (RFC 8032), and every input comes from a label or a constant. Needs loadSodium(). */
export function agentVector(): AgentVector {
  const user = userKeysFromSeed(fixtureSeed());
  const server = serverPublicKey(sodium().crypto_scalarmult_base(new Uint8Array(createHash('sha256').update(SERVER_LABEL).digest())));
  const payload = encodePayload({ access: [{ proto: 'tcp', port: 22 }] }, 1_764_500_000_000, new Uint8Array(16).fill(0x11));
  const message = signedMessage(server, payload);
  return {
    description:
      "An ssh-agent's ssh-ed25519 signature over a knock's signed message (label || 0x00 || server public key || payload) " +
      'is this plain Ed25519 signature: test/client/identity.test.ts asks a real ssh-agent holding the fixture key and compares.',
    keyLabel: FIXTURE_KEY_LABEL,
    seedRule: 'seed = SHA-256(keyLabel as UTF-8); the Ed25519 key pair is crypto_sign_seed_keypair(seed)',
    publicKey: toHex(user.publicKey),
    message: toHex(message),
    signature: toHex(sodium().crypto_sign_detached(message, user.secretKey)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await loadSodium();
  const out = fileURLToPath(new URL('../../../test/vectors/agent-signature.json', import.meta.url));
  writeFileSync(out, `${JSON.stringify(agentVector(), null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}
