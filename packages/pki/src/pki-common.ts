// Shared pieces of the internal PKI: the crypto provider, the one error type, and the names that
// bind a certificate to a node. Every file in pki/ imports @peculiar/x509 only through this
// module. The library throws at import time unless reflect-metadata was loaded first, and it must be
// told to use Node's WebCrypto.
import "reflect-metadata";
import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto);

export { x509 };
export const subtle = webcrypto.subtle;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** ECDSA P-256 with SHA-256 is supported by every TLS stack the agents and cores use. */
export const keyAlgorithm = { name: "ECDSA", namedCurve: "P-256" } as const;
export const signingAlgorithm = { name: "ECDSA", hash: "SHA-256" } as const;

/** The SAN URI prefix that carries the node id. This is the only place a node's identity is read from. */
export const nodeUriPrefix = "spiffe://vpnpanel/node/";
export const nodeDnsSuffix = ".nodes.vpnpanel.internal";

export type PkiErrorCode =
  | "invalid_ca"
  | "invalid_key"
  | "invalid_csr"
  | "csr_signature_invalid"
  | "unsupported_key"
  | "invalid_node_id"
  | "invalid_certificate"
  | "missing_node_id";

export class PkiError extends Error {
  constructor(
    readonly code: PkiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "PkiError";
  }
}

// A node id must fit in one DNS label (63 characters) and in a URI path segment unescaped. This
// keeps it from forging a path such as "a/../b", or an extra URI component.
const nodeIdPattern = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

export function assertNodeId(nodeId: string): void {
  if (!nodeIdPattern.test(nodeId)) {
    throw new PkiError("invalid_node_id", `invalid node id ${JSON.stringify(nodeId.slice(0, 80))}`);
  }
}

export function isNodeId(value: string): boolean {
  return nodeIdPattern.test(value);
}

/**
 * The informational DNS SAN. Underscores are not valid in a DNS name, and DNS names are case
 * insensitive, so this name can be ambiguous. Identity therefore comes from the URI SAN only.
 */
export function nodeDnsName(nodeId: string): string {
  return nodeId.toLowerCase().replaceAll("_", "-") + nodeDnsSuffix;
}

/**
 * 128 random bits, positive, with a non-zero first byte. The DER integer then needs no padding
 * byte, and every tool prints the same 32 hex digits. Revocation lookups depend on that.
 */
export function randomSerialHex(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString("hex");
}

/**
 * Lower-case hex in whole bytes, without separators or DER padding bytes (leading "00"). Node
 * (`serialNumber`), OpenSSL and @peculiar/x509 print the same serial in this form. Revocation
 * lists store this form, so that a lookup never misses a serial that was printed differently.
 */
export function normalizeSerialHex(serial: string): string {
  let hex = serial.toLowerCase().replace(/[^0-9a-f]/g, "");
  if (hex.length % 2 === 1) hex = `0${hex}`;
  while (hex.length > 2 && hex.startsWith("00")) hex = hex.slice(2);
  return hex;
}

export function toPem(der: ArrayBuffer, label: "PRIVATE KEY" | "CERTIFICATE"): string {
  return x509.PemConverter.encode(der, label);
}

export const dayMs = 86_400_000;
