// The parts of ssh2 (CommonJS, no types of its own) that protocol/openssh.ts uses: its OpenSSH private key parser and its key generator, loaded by path so the rest of ssh2 (client, server) is never loaded.
declare module 'ssh2/lib/protocol/keyParser.js' {
  interface ParsedKey {
    readonly type: string;
    readonly comment: string;
    isPrivateKey(): boolean;
    getPrivatePEM(): string | null;
    getPublicSSH(): Buffer | null;
  }
  const keyParser: {
    /** A parsed key, or an Error saying what is wrong (a missing or wrong passphrase included); never throws. */
    parseKey(data: string | Buffer, passphrase?: string | Buffer): ParsedKey | Error;
  };
  export default keyParser;
}

declare module 'ssh2/lib/keygen.js' {
  interface KeyPairOptions {
    readonly comment?: string;
    readonly passphrase?: string | Buffer;
    readonly cipher?: string;
    readonly rounds?: number;
  }
  const keygen: {
    /** An OpenSSH private key ("-----BEGIN OPENSSH PRIVATE KEY-----", encrypted with bcrypt-pbkdf when a passphrase is given) and its public line. */
    generateKeyPairSync(type: 'ed25519', options: KeyPairOptions): { readonly private: string; readonly public: string };
  };
  export default keygen;
}
