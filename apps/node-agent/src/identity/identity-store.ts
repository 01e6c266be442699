// The node's identity on disk: its private key, its client certificate and the panel CA it trusts.
// All three live in one file, written to a temp file, fsync'd and renamed, so a renewal that dies
// half-way can never leave a key next to a certificate for another key. Mode 0600 in a 0700 directory:
// the private key was generated here and never leaves the node.

import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { certificateInfo, nodeIdFromCert, type TlsIdentity } from "@vpnpanel/pki";

export interface NodeIdentity extends TlsIdentity {
  nodeId: string;
  /** The CA that signs node certificates and the collector's server certificate. */
  caPem: string;
  notBefore: Date;
  notAfter: Date;
}

interface StoredIdentity {
  version: 1;
  certPem: string;
  keyPem: string;
  caPem: string;
}

export const IDENTITY_FILE = "identity.json";

/** Derives the node id and validity from the certificate itself, never from a side channel. */
export function describeIdentity(stored: { certPem: string; keyPem: string; caPem: string }): NodeIdentity {
  const info = certificateInfo(stored.certPem);
  return {
    certPem: stored.certPem,
    keyPem: stored.keyPem,
    caPem: stored.caPem,
    nodeId: nodeIdFromCert(stored.certPem),
    notBefore: info.notBefore,
    notAfter: info.notAfter,
  };
}

export async function loadIdentity(stateDir: string): Promise<NodeIdentity | null> {
  const text = await readFile(join(stateDir, IDENTITY_FILE), "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw error;
  });
  if (text === null) return null;
  const stored = JSON.parse(text) as StoredIdentity;
  if (!stored.certPem || !stored.keyPem || !stored.caPem)
    throw new Error(`${IDENTITY_FILE} is incomplete; delete it and enroll the node again`);
  return describeIdentity(stored);
}

export async function saveIdentity(
  stateDir: string,
  identity: { certPem: string; keyPem: string; caPem: string },
): Promise<NodeIdentity> {
  const described = describeIdentity(identity);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const path = join(stateDir, IDENTITY_FILE);
  const tmp = `${path}.tmp`;
  const body: StoredIdentity = {
    version: 1,
    certPem: identity.certPem,
    keyPem: identity.keyPem,
    caPem: identity.caPem,
  };
  await rm(tmp, { force: true });
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(body, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dir = await open(stateDir, "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return described;
}
