// The panel's internal certificate authority. It signs the collector's TLS certificate and one
// client certificate per node. The CA key is ECDSA P-256 and never leaves the control plane. The
// caller stores it encrypted (see @vpnpanel/common secret-box).
import { type CertificateInfo, certificateInfo } from "./cert-info";
import { exportPrivateKeyPem, generateKeyPair, importPrivateKeyPem, parseCsr } from "./csr";
import {
  assertNodeId,
  type CryptoKey,
  dayMs,
  nodeDnsName,
  nodeUriPrefix,
  PkiError,
  randomSerialHex,
  signingAlgorithm,
  subtle,
  x509,
} from "./pki-common";

/** A CA as stored: certificate and PKCS#8 private key, both PEM. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

export interface IssuedCertificate {
  certPem: string;
  info: CertificateInfo;
}

// Certificates start slightly in the past, so that a node whose clock runs a few minutes behind
// does not reject its fresh certificate as "not yet valid".
const backdateMs = 5 * 60_000;

interface LoadedCa {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

export async function createCa(params: {
  commonName: string;
  validityDays: number;
  now?: Date;
}): Promise<CaMaterial> {
  const now = params.now ?? new Date();
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [params.commonName] }, { O: ["vpnpanel"] }],
    notBefore: new Date(now.getTime() - backdateMs),
    notAfter: new Date(now.getTime() + params.validityDays * dayMs),
    keys,
    signingAlgorithm,
    extensions: [
      // pathLength 0: this CA signs leaf certificates only. A leaked node key can never act as an
      // intermediate CA.
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem"), keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues the collector's TLS server certificate. The key pair is generated here, because the
 * collector runs inside the control plane, which already holds the CA.
 */
export async function issueServerCert(
  ca: CaMaterial,
  params: { dnsNames: string[]; ips?: string[]; validityDays: number; now?: Date },
): Promise<IssuedCertificate & { keyPem: string }> {
  const names = [
    ...params.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...(params.ips ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  if (names.length === 0)
    throw new PkiError("invalid_certificate", "a server certificate needs a DNS name or IP");
  const keys = await generateKeyPair();
  const issued = await issue(await loadCa(ca), {
    subject: [{ CN: [params.dnsNames[0] ?? params.ips?.[0] ?? "vpnpanel-collector"] }, { O: ["vpnpanel"] }],
    publicKey: keys.publicKey,
    san: names,
    usage: x509.ExtendedKeyUsage.serverAuth,
    validityDays: params.validityDays,
    now: params.now,
  });
  return { ...issued, keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/**
 * Issues a node's client certificate for the CSR's public key. Nothing else is taken from the
 * CSR. Its subject and any extensions it requests are ignored. A node can therefore never ask
 * for another node's id, or for CA or serverAuth rights.
 */
export async function issueNodeCert(
  ca: CaMaterial,
  params: { csrPem: string; nodeId: string; validityDays: number; now?: Date },
): Promise<IssuedCertificate> {
  assertNodeId(params.nodeId);
  const csr = await parseCsr(params.csrPem);
  return issue(await loadCa(ca), {
    subject: [{ CN: [params.nodeId] }, { O: ["vpnpanel"] }, { OU: ["node"] }],
    publicKey: csr.publicKey,
    san: [
      { type: "url", value: nodeUriPrefix + params.nodeId },
      { type: "dns", value: nodeDnsName(params.nodeId) },
    ],
    usage: x509.ExtendedKeyUsage.clientAuth,
    validityDays: params.validityDays,
    now: params.now,
  });
}

async function issue(
  ca: LoadedCa,
  params: {
    subject: x509.JsonName;
    publicKey: x509.PublicKeyType;
    san: x509.JsonGeneralNames;
    usage: x509.ExtendedKeyUsage;
    validityDays: number;
    now: Date | undefined;
  },
): Promise<IssuedCertificate> {
  const now = params.now ?? new Date();
  if (ca.cert.notAfter.getTime() <= now.getTime())
    throw new PkiError("invalid_ca", "the CA certificate has expired");
  // A certificate cannot outlive the CA that signed it. Past the CA's notAfter, no verifier
  // would accept it anyway.
  const notAfter = Math.min(now.getTime() + params.validityDays * dayMs, ca.cert.notAfter.getTime());
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: params.subject,
    issuer: ca.cert.subjectName,
    notBefore: new Date(now.getTime() - backdateMs),
    notAfter: new Date(notAfter),
    publicKey: params.publicKey,
    signingKey: ca.key,
    signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([params.usage]),
      new x509.SubjectAlternativeNameExtension(params.san),
      await x509.SubjectKeyIdentifierExtension.create(params.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { certPem: cert.toString("pem"), info: certificateInfo(cert) };
}

async function loadCa(ca: CaMaterial): Promise<LoadedCa> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(ca.certPem);
  } catch {
    throw new PkiError("invalid_ca", "CA certificate is not valid PEM");
  }
  const key = await importPrivateKeyPem(ca.keyPem);
  // A certificate signed by a key that does not match the CA certificate fails only later, in
  // every agent's TLS handshake. Check the pair here, so that the error names the real cause.
  const probe = new Uint8Array(32);
  const signature = await subtle.sign(signingAlgorithm, key, probe);
  const publicKey = await cert.publicKey.export();
  if (!(await subtle.verify(signingAlgorithm, publicKey, signature, probe))) {
    throw new PkiError("invalid_ca", "CA private key does not match the CA certificate");
  }
  return { cert, key };
}
