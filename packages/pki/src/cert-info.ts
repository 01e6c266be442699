// Reading certificates: which node a certificate belongs to, and the facts stored for revocation
// and renewal. The node id is read only from the SAN URI, never from the subject CN.
import { createHash } from "node:crypto";
import { isNodeId, nodeUriPrefix, normalizeSerialHex, PkiError, x509 } from "./pki-common";

/** PEM text, DER bytes (Buffer or Uint8Array), or an already parsed certificate. */
export type CertificateInput = string | Uint8Array | ArrayBuffer | x509.X509Certificate;

export interface CertificateInfo {
  /** Normalized (see normalizeSerialHex): the key that revocation stores. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 of the DER, lower-case hex without separators. */
  fingerprintSha256: string;
}

export function parseCertificate(input: CertificateInput): x509.X509Certificate {
  if (input instanceof x509.X509Certificate) return input;
  try {
    // A Buffer is a view into a shared pool. Copy exactly its bytes, so the parser never sees the
    // neighbouring data.
    const raw = typeof input === "string" || input instanceof ArrayBuffer ? input : Uint8Array.from(input);
    return new x509.X509Certificate(raw);
  } catch {
    throw new PkiError("invalid_certificate", "not a valid X.509 certificate");
  }
}

export function certificateInfo(input: CertificateInput): CertificateInfo {
  const cert = parseCertificate(input);
  return {
    serialHex: normalizeSerialHex(cert.serialNumber),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    fingerprintSha256: createHash("sha256").update(new Uint8Array(cert.rawData)).digest("hex"),
  };
}

/**
 * The node id from the certificate's single spiffe://vpnpanel/node/<id> SAN URI. A certificate with
 * no such URI, or with more than one, identifies no node. Our CA never issues a certificate with
 * two node URIs.
 */
export function nodeIdFromCert(input: CertificateInput): string {
  const cert = parseCertificate(input);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.items ?? [])
    .filter((name) => name.type === "url" && name.value.startsWith(nodeUriPrefix))
    .map((name) => name.value.slice(nodeUriPrefix.length));
  const [nodeId, ...others] = uris;
  if (nodeId === undefined || others.length > 0 || !isNodeId(nodeId)) {
    throw new PkiError("missing_node_id", "certificate does not carry exactly one valid node id");
  }
  return nodeId;
}
