// The one libsodium instance: every cryptographic primitive in sesame comes from here.
import sodiumModule from 'libsodium-wrappers';

type Sodium = typeof sodiumModule;

let loaded: Sodium | undefined;

/** Waits for the WebAssembly module once; later calls return at once. */
export async function loadSodium(): Promise<Sodium> {
  if (loaded === undefined) {
    await sodiumModule.ready;
    loaded = sodiumModule;
  }
  return loaded;
}

/** For synchronous hot paths that run after loadSodium() resolved. */
export function sodium(): Sodium {
  if (loaded === undefined) throw new Error('libsodium used before loadSodium() resolved');
  return loaded;
}
