import { isIP } from "node:net";
import type { SecretBox } from "@vpnpanel/common";
import { type Db, schema } from "@vpnpanel/db";
import { type CaMaterial, certificateInfo, createCa, issueServerCert, type TlsIdentity } from "@vpnpanel/pki";
import { eq } from "drizzle-orm";

// The node CA lives in the database, so every collector and API replica uses the same one. The first
// process that needs it creates it; a replica racing to do the same loses the insert and reads the
// winner's. The key is encrypted with SECRET_KEY and bound to the row id.

export const NODE_CA_ID = "node-ca";
const CA_VALIDITY_DAYS = 3650;
const SERVER_CERT_VALIDITY_DAYS = 365;

const keyContext = (id: string) => `pki.ca.key:${id}`;

export interface CaStore {
  /** The CA (created on first use). */
  get(): Promise<CaMaterial>;
  /** A fresh TLS identity for a collector, signed by the CA, with the given DNS names and IPs. */
  serverIdentity(names: string[]): Promise<TlsIdentity & { notAfter: Date }>;
}

export function createCaStore(db: Db, box: SecretBox): CaStore {
  let cached: Promise<CaMaterial> | null = null;

  async function load(): Promise<CaMaterial | null> {
    const [row] = await db
      .select()
      .from(schema.pkiAuthorities)
      .where(eq(schema.pkiAuthorities.id, NODE_CA_ID))
      .limit(1);
    if (!row) return null;
    return { certPem: row.certPem, keyPem: box.decrypt(row.keyEnc, keyContext(row.id)) };
  }

  async function loadOrCreate(): Promise<CaMaterial> {
    const existing = await load();
    if (existing) return existing;
    const ca = await createCa({ commonName: "vpnpanel node CA", validityDays: CA_VALIDITY_DAYS });
    await db
      .insert(schema.pkiAuthorities)
      .values({
        id: NODE_CA_ID,
        certPem: ca.certPem,
        keyEnc: box.encrypt(ca.keyPem, keyContext(NODE_CA_ID)),
        notAfter: certificateInfo(ca.certPem).notAfter,
      })
      .onConflictDoNothing();
    const stored = await load();
    if (!stored) throw new Error("the node CA could not be stored");
    return stored;
  }

  return {
    get() {
      cached ??= loadOrCreate().catch((e) => {
        cached = null;
        throw e;
      });
      return cached;
    },
    async serverIdentity(names) {
      const unique = [...new Set(names.map((n) => n.trim()).filter(Boolean))];
      const ips = unique.filter((n) => isIP(n) !== 0);
      const dnsNames = unique.filter((n) => isIP(n) === 0);
      const issued = await issueServerCert(await this.get(), {
        dnsNames,
        ips,
        validityDays: SERVER_CERT_VALIDITY_DAYS,
      });
      return { certPem: issued.certPem, keyPem: issued.keyPem, notAfter: issued.info.notAfter };
    },
  };
}
