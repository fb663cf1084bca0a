import { createPrivateKey } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { signers, type Identity, type Signer } from '@hyperledger/fabric-gateway';

export interface PemIdentityFiles {
  mspId: string;
  /** X.509 certificate, PEM. */
  certPath: string;
  /** Private key, PEM (PKCS#8 or SEC1). */
  keyPath: string;
}

/** Loads a client identity and its signer from PEM files. */
export async function loadPemIdentity(
  files: PemIdentityFiles,
): Promise<{ identity: Identity; signer: Signer }> {
  const [cert, key] = await Promise.all([readFile(files.certPath), readFile(files.keyPath, 'utf8')]);
  return {
    identity: { mspId: files.mspId, credentials: cert },
    signer: signers.newPrivateKeySigner(createPrivateKey(key)),
  };
}

/** The files of an MSP folder as cryptogen or fabric-ca-client lay it out (signcerts/, keystore/). */
export async function pemFilesFromMspDir(mspId: string, mspDir: string): Promise<PemIdentityFiles> {
  const first = async (dir: string): Promise<string> => {
    const names = (await readdir(join(mspDir, dir))).filter((n) => !n.startsWith('.')).sort();
    if (!names[0]) throw new Error(`no file in ${join(mspDir, dir)}`);
    return join(mspDir, dir, names[0]);
  };
  return { mspId, certPath: await first('signcerts'), keyPath: await first('keystore') };
}
