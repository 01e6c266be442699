import { execFileSync } from "node:child_process";
import { X509Certificate as NodeX509 } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CaMaterial, createCa, issueNodeCert, issueServerCert } from "./ca";
import { certificateInfo, nodeIdFromCert, parseCertificate } from "./cert-info";
import { createCsr, generateKeyPair } from "./csr";
import { normalizeSerialHex, PkiError, x509 } from "./pki-common";

const dir = mkdtempSync(join(tmpdir(), "vpnpanel-pki-"));
let ca: CaMaterial;

beforeAll(async () => {
  ca = await createCa({ commonName: "vpnpanel test CA", validityDays: 3650 });
  writeFileSync(join(dir, "ca.pem"), ca.certPem);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `openssl verify` and returns its combined output; throws with that output on failure. */
function opensslVerify(certPem: string, ...args: string[]): string {
  const file = join(dir, `leaf-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, certPem);
  try {
    return execFileSync(
      "openssl",
      ["verify", "-x509_strict", "-CAfile", join(dir, "ca.pem"), ...args, file],
      {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

async function nodeCsr(commonName?: string): Promise<string> {
  return createCsr({ keyPair: await generateKeyPair(), commonName });
}

async function expectPkiError(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toSatisfy((e) => e instanceof PkiError && e.code === code);
}

describe("internal CA", () => {
  it("a node certificate chains to the CA for client auth (openssl verify)", async () => {
    const { certPem } = await issueNodeCert(ca, {
      csrPem: await nodeCsr(),
      nodeId: "node_7f3a",
      validityDays: 30,
    });
    expect(opensslVerify(certPem, "-purpose", "sslclient")).toMatch(/: OK/);
    // clientAuth only: the certificate can never serve as a collector.
    expect(() => opensslVerify(certPem, "-purpose", "sslserver")).toThrow(/unsuitable certificate purpose/);
  });

  it("a server certificate chains to the CA for the collector's address (openssl verify)", async () => {
    const server = await issueServerCert(ca, {
      dnsNames: ["collector.example.test", "localhost"],
      ips: ["127.0.0.1"],
      validityDays: 30,
    });
    expect(opensslVerify(server.certPem, "-purpose", "sslserver", "-verify_ip", "127.0.0.1")).toMatch(/: OK/);
    expect(opensslVerify(server.certPem, "-verify_hostname", "collector.example.test")).toMatch(/: OK/);
    expect(server.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("the CA is a pathlen-0 CA whose key matches its certificate", async () => {
    const cert = parseCertificate(ca.certPem);
    const constraints = cert.getExtension(x509.BasicConstraintsExtension);
    expect(constraints?.ca).toBe(true);
    expect(constraints?.pathLength).toBe(0);
    expect(await cert.verify({ signatureOnly: true })).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("an expired certificate fails openssl verify", async () => {
    const now = new Date(Date.now() - 20 * 86_400_000);
    const { certPem, info } = await issueNodeCert(ca, {
      csrPem: await nodeCsr(),
      nodeId: "node_old",
      validityDays: 1,
      now,
    });
    expect(info.notAfter.getTime()).toBeLessThan(Date.now());
    expect(() => opensslVerify(certPem)).toThrow(/certificate has expired/);
  });

  it("a certificate never outlives its CA", async () => {
    const shortCa = await createCa({ commonName: "short", validityDays: 2 });
    const { info } = await issueNodeCert(shortCa, {
      csrPem: await nodeCsr(),
      nodeId: "n1",
      validityDays: 365,
    });
    expect(info.notAfter.getTime()).toBe(parseCertificate(shortCa.certPem).notAfter.getTime());
  });

  it("a CSR with a bad signature is rejected", async () => {
    const pem = await nodeCsr("agent-tamper-target");
    const der = Buffer.from(x509.PemConverter.decodeFirst(pem));
    const at = der.indexOf("agent-tamper-target");
    expect(at).toBeGreaterThan(0);
    der[at] = "b".charCodeAt(0); // the subject changes, the signature stays
    const tampered = x509.PemConverter.encode(der, "CERTIFICATE REQUEST");
    await expectPkiError(
      issueNodeCert(ca, { csrPem: tampered, nodeId: "n1", validityDays: 1 }),
      "csr_signature_invalid",
    );
  });

  it("garbage, oversized and RSA CSRs are rejected with a clear code", async () => {
    await expectPkiError(issueNodeCert(ca, { csrPem: "nope", nodeId: "n1", validityDays: 1 }), "invalid_csr");
    await expectPkiError(
      issueNodeCert(ca, { csrPem: "A".repeat(20_000), nodeId: "n1", validityDays: 1 }),
      "invalid_csr",
    );
    const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]) };
    const keys = await crypto.subtle.generateKey({ ...rsa, modulusLength: 2048 }, false, ["sign", "verify"]);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=rsa",
      keys,
      signingAlgorithm: rsa,
    });
    const rsaPem = csr.toString("pem");
    await expectPkiError(
      issueNodeCert(ca, { csrPem: rsaPem, nodeId: "n1", validityDays: 1 }),
      "unsupported_key",
    );
  });

  it("names and extensions requested in the CSR are ignored", async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: "CN=node_victim",
      keys,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: "url", value: "spiffe://vpnpanel/node/node_victim" },
        ]),
        new x509.BasicConstraintsExtension(true, undefined, true),
      ],
    });
    const { certPem } = await issueNodeCert(ca, {
      csrPem: csr.toString("pem"),
      nodeId: "node_me",
      validityDays: 1,
    });
    const cert = parseCertificate(certPem);
    expect(nodeIdFromCert(cert)).toBe("node_me");
    expect(cert.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(false);
    expect(cert.subject).toContain("CN=node_me");
  });

  it("rejects a node id that could forge a URI or DNS name", async () => {
    for (const nodeId of ["", "a/../b", "n 1", "node.evil", "x".repeat(64), "-n", "n_"]) {
      await expectPkiError(
        issueNodeCert(ca, { csrPem: await nodeCsr(), nodeId, validityDays: 1 }),
        "invalid_node_id",
      );
    }
  });

  it("a CA whose key does not match its certificate is refused", async () => {
    const other = await createCa({ commonName: "other", validityDays: 1 });
    const mixed = { certPem: ca.certPem, keyPem: other.keyPem };
    await expectPkiError(
      issueNodeCert(mixed, { csrPem: await nodeCsr(), nodeId: "n1", validityDays: 1 }),
      "invalid_ca",
    );
  });
});

describe("reading certificates", () => {
  it("serials normalize to whole lower-case bytes without DER padding", () => {
    expect(normalizeSerialHex("0D:91:A0")).toBe("0d91a0");
    expect(normalizeSerialHex("00F3A1")).toBe("f3a1");
    expect(normalizeSerialHex("d91a0")).toBe("0d91a0");
    expect(normalizeSerialHex("00")).toBe("00");
  });

  it("nodeIdFromCert reads the SAN URI from PEM, DER and a parsed certificate", async () => {
    const { certPem } = await issueNodeCert(ca, {
      csrPem: await nodeCsr(),
      nodeId: "node_AbC-9",
      validityDays: 1,
    });
    const der = new NodeX509(certPem).raw;
    expect(nodeIdFromCert(certPem)).toBe("node_AbC-9");
    expect(nodeIdFromCert(der)).toBe("node_AbC-9");
    expect(nodeIdFromCert(new Uint8Array(der).buffer)).toBe("node_AbC-9");
    expect(nodeIdFromCert(parseCertificate(certPem))).toBe("node_AbC-9");
    // The DNS SAN is informational, lower-cased and DNS-safe.
    expect(new NodeX509(certPem).subjectAltName).toContain("DNS:node-abc-9.nodes.vpnpanel.internal");
  });

  it("a certificate without a node URI identifies no node", async () => {
    const server = await issueServerCert(ca, { dnsNames: ["localhost"], validityDays: 1 });
    expect(() => nodeIdFromCert(server.certPem)).toThrow(PkiError);
    expect(() => nodeIdFromCert("not a cert")).toThrow(/not a valid X.509 certificate/);
  });

  it("certificateInfo agrees with Node's own parser", async () => {
    const { certPem, info } = await issueNodeCert(ca, {
      csrPem: await nodeCsr(),
      nodeId: "n1",
      validityDays: 10,
    });
    const node = new NodeX509(certPem);
    expect(info).toEqual(certificateInfo(certPem));
    expect(info.serialHex).toBe(node.serialNumber.toLowerCase());
    expect(info.serialHex).toMatch(/^[0-9a-f]{32}$/);
    expect(info.serialHex.startsWith("00")).toBe(false);
    expect(info.fingerprintSha256).toBe(node.fingerprint256.replaceAll(":", "").toLowerCase());
    expect(info.notAfter.getTime()).toBe(new Date(node.validTo).getTime());
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBeGreaterThan(10 * 86_400_000 - 1000);
  });
});
