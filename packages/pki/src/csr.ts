// Key pairs and certificate signing requests. The agent runs this side. It generates its key pair
// locally and sends only the CSR, so the private key never leaves the node. The control plane uses
// parseCsr to check a CSR before it signs the CSR's public key.
import {
  type CryptoKey,
  type CryptoKeyPair,
  keyAlgorithm,
  PkiError,
  signingAlgorithm,
  subtle,
  toPem,
  x509,
} from "./pki-common";

// A CSR comes from an unauthenticated caller (Enroll), so it is bounded before any parsing.
const maxCsrPemLength = 16_384;

/** Extractable, so that the agent can store the private key as PKCS#8 PEM next to its certificate. */
export async function generateKeyPair(): Promise<CryptoKeyPair> {
  return subtle.generateKey(keyAlgorithm, true, ["sign", "verify"]);
}

export async function exportPrivateKeyPem(privateKey: CryptoKey): Promise<string> {
  return toPem(await subtle.exportKey("pkcs8", privateKey), "PRIVATE KEY");
}

export async function importPrivateKeyPem(keyPem: string): Promise<CryptoKey> {
  try {
    const der = x509.PemConverter.decodeFirst(keyPem);
    return await subtle.importKey("pkcs8", der, keyAlgorithm, false, ["sign"]);
  } catch {
    throw new PkiError("invalid_key", "private key is not a PKCS#8 ECDSA P-256 key");
  }
}

/**
 * The subject is informational only. The CA ignores everything in the CSR except the public key,
 * and writes the node id itself.
 */
export async function createCsr(params: { keyPair: CryptoKeyPair; commonName?: string }): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [params.commonName ?? "vpnpanel-node"] }],
    keys: params.keyPair,
    signingAlgorithm,
  });
  return csr.toString("pem");
}

const acceptedCurves = new Set(["P-256", "P-384"]);

/**
 * Parses a CSR and checks its self-signature, which proves that the requester holds the private key.
 * Without that check, a caller could obtain a certificate for someone else's public key.
 */
export async function parseCsr(csrPem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (csrPem.length > maxCsrPemLength) throw new PkiError("invalid_csr", "CSR is too large");
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new PkiError("invalid_csr", "CSR is not a valid PKCS#10 request");
  }
  const algorithm = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (algorithm.name !== "ECDSA" || !acceptedCurves.has(algorithm.namedCurve ?? "")) {
    throw new PkiError("unsupported_key", "CSR key must be ECDSA P-256 or P-384");
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  if (!valid) throw new PkiError("csr_signature_invalid", "CSR signature does not verify");
  return csr;
}
