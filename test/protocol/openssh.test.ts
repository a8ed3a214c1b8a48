// src/protocol/openssh.ts: keys sesame keygen writes through ssh2 are well formed, every one of them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateOpenSshKey, parseOpenSshPrivateKey } from '../../src/protocol/openssh.ts';
import { parseUserPublicKey } from '../../src/protocol/keyfile.ts';
import { loadSodium } from '../../src/protocol/sodium.ts';

test('2,048 new keys: each public line parses to 32 key bytes and its private key reads back to the same key', async () => {
  // ssh2 alone writes one key in 256 with a 31-byte public key: 2,048 draws would find one with probability 1 - e^-8.
  await loadSodium();
  for (let i = 0; i < 2048; i++) {
    const pair = generateOpenSshKey(`key ${i}`, '');
    const pub = parseUserPublicKey(pair.publicLine).key;
    const priv = parseOpenSshPrivateKey(pair.privateText);
    assert.ok(priv.ok, `key ${i}: ${priv.ok ? '' : priv.detail}`);
    assert.deepEqual(Buffer.from(priv.publicKey), Buffer.from(pub), `key ${i}: the private key file holds the public key the .pub line names`);
  }
});
