import { queryRows } from "@vpnpanel/db";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApi, type TestApi } from "../../../test/support/api";

// The node routes through the real HTTP stack: validation per core, write-only secrets, enrollment
// tokens, config revisions, policy, health, tenant isolation.

let t: TestApi;
let admin: TestApi["world"]["members"]["admin"];

const publicKey = "aGVsbG8td29ybGQtdGhpcy1pcy1hLXRlc3Qta2V5MDE"; // 43 chars base64url
const realityKey = "c2VjcmV0LXNlcnZlci1rZXktbmV2ZXItcmV0dXJuZWQ"; // the server's private key
const vlessReality = {
  tag: "vless-reality",
  protocol: "vless",
  port: 443,
  transport: { type: "tcp" },
  security: {
    type: "reality",
    reality: { publicKey, shortId: "ab12", serverName: "www.example.com" },
  },
  flow: "xtls-rprx-vision",
  server: { reality: { privateKey: realityKey, dest: "www.example.com:443" } },
};
const vmessWsTls = {
  tag: "vmess-ws",
  protocol: "vmess",
  port: 8443,
  transport: { type: "ws", path: "/ws" },
  security: { type: "tls", sni: "edge.example.com" },
  server: { tls: { certificateFile: "/etc/ssl/edge.crt", keyFile: "/etc/ssl/edge.key" } },
  hosts: [{ address: "cdn.example.com", port: 443, remark: "{USERNAME} via CDN" }],
};

async function createNode(body: Record<string, unknown>, who = admin) {
  return t.call(who, { method: "POST", url: `/nodes?tenant_id=${t.world.tenantA}`, payload: body });
}

beforeAll(async () => {
  t = await createTestApi();
  admin = t.world.members.admin;
});
afterAll(async () => {
  await t?.close();
});

describe("nodes", () => {
  it("creates an Xray node with REALITY and TLS inbounds; the REALITY key is write-only", async () => {
    const res = await createNode({
      name: "edge-1",
      address: "edge.example.com",
      inbounds: [vlessReality, vmessWsTls],
    });
    expect(res.statusCode).toBe(201);
    const node = res.json();
    expect(node.status).toBe("pending");
    expect(node.inbounds[0].server.reality).toEqual({ dest: "www.example.com:443", privateKeySet: true });
    expect(JSON.stringify(node)).not.toContain(realityKey);
    const [row] = await queryRows<{ inbounds: unknown }>(
      t.cp.database.db,
      sql`SELECT inbounds FROM nodes WHERE id = ${node.id}`,
    );
    expect(JSON.stringify(row!.inbounds)).not.toContain(realityKey);
    // The agent gets ordinary Xray inbound objects, with the key decrypted.
    const config = await t.cp.desired.nodeConfig(node.id);
    const inbounds = JSON.parse(config.xrayInboundsJson);
    expect(inbounds[0]).toMatchObject({
      tag: "vless-reality",
      protocol: "vless",
      settings: { clients: [], decryption: "none", flow: "xtls-rprx-vision" },
      streamSettings: {
        network: "tcp",
        security: "reality",
        realitySettings: { privateKey: realityKey, shortIds: ["ab12"] },
      },
    });
    expect(inbounds[1].streamSettings).toMatchObject({
      network: "ws",
      wsSettings: { path: "/ws" },
      tlsSettings: { certificates: [{ certificateFile: "/etc/ssl/edge.crt", keyFile: "/etc/ssl/edge.key" }] },
    });
  });

  it("a v2ray 4.x node refuses REALITY, XTLS flow, gRPC, uTLS and Shadowsocks with the reason", async () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [vlessReality, "inbounds[0].security.type", /v2ray 4.x has no REALITY/],
      [
        { ...vmessWsTls, transport: { type: "grpc", serviceName: "svc" } },
        "inbounds[0].transport.type",
        /no grpc/,
      ],
      [
        { ...vmessWsTls, security: { type: "tls", fingerprint: "chrome" } },
        "inbounds[0].security.fingerprint",
        /uTLS/,
      ],
      [
        { ...vlessReality, security: { type: "tls" }, server: vmessWsTls.server },
        "inbounds[0].flow",
        /no XTLS flow/,
      ],
      [
        {
          tag: "ss",
          protocol: "shadowsocks",
          port: 8388,
          transport: { type: "tcp" },
          security: { type: "none" },
          shadowsocks: { method: "aes-256-gcm" },
        },
        "inbounds[0].protocol",
        /one Shadowsocks user per inbound/,
      ],
    ];
    for (const [inbound, field, message] of cases) {
      const res = await createNode({
        name: `v2-${field}`,
        address: "a.example.com",
        core: "v2ray",
        inbounds: [inbound],
      });
      expect(res.statusCode, JSON.stringify(inbound)).toBe(400);
      expect(res.json().error).toMatchObject({ code: "validation_failed", field });
      expect(res.json().error.message).toMatch(message);
    }
  });

  it("a TLS inbound needs the node's certificate paths; tags and ports are unique", async () => {
    const noCert = await createNode({
      name: "x1",
      address: "a",
      inbounds: [{ ...vmessWsTls, server: undefined }],
    });
    expect(noCert.json().error.field).toBe("inbounds[0].server.tls");
    const twice = await createNode({
      name: "x2",
      address: "a",
      inbounds: [vmessWsTls, { ...vmessWsTls, port: 1 }],
    });
    expect(twice.json().error.field).toBe("inbounds[1].tag");
  });

  it("names are unique per tenant (409)", async () => {
    await createNode({ name: "same", address: "a" });
    const again = await createNode({ name: "SAME", address: "b" });
    expect(again.statusCode).toBe(409);
    expect(again.json().error.field).toBe("name");
  });

  it("a config change is one revision with a config change row; a REALITY key is kept when not resent", async () => {
    const node = (await createNode({ name: "rev", address: "a", inbounds: [vlessReality] })).json();
    const before = (await t.cp.desired.revision(node.id))!;
    const patched = await t.call(admin, {
      method: "PATCH",
      url: `/nodes/${node.id}`,
      payload: {
        inbounds: [{ ...vlessReality, port: 8443, server: { reality: { dest: "www.example.com:443" } } }],
      },
    });
    expect(patched.statusCode).toBe(200);
    const after = (await t.cp.desired.revision(node.id))!;
    expect(after.revision).toBe(before.revision + 1n);
    expect(after.configRevision).toBe(after.revision);
    const inbounds = JSON.parse((await t.cp.desired.nodeConfig(node.id)).xrayInboundsJson);
    expect(inbounds[0]).toMatchObject({
      port: 8443,
      streamSettings: { realitySettings: { privateKey: realityKey } },
    });
    // A change that does not touch the config bumps nothing.
    await t.call(admin, { method: "PATCH", url: `/nodes/${node.id}`, payload: { tags: ["eu"] } });
    expect((await t.cp.desired.revision(node.id))!.revision).toBe(after.revision);
  });

  it("an enrollment token is shown once with the CA and the addresses, and stored only as a hash", async () => {
    const node = (await createNode({ name: "enr", address: "a" })).json();
    const res = await t.call(admin, { method: "POST", url: `/nodes/${node.id}/enrollment-tokens` });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body.token).toMatch(/^vpne_/);
    expect(body.ca_pem).toContain("BEGIN CERTIFICATE");
    expect(body.collector_address).toBe(`127.0.0.1:${t.cp.config.COLLECTOR_PORT}`);
    expect(body.enroll_address).toBe(`127.0.0.1:${t.cp.config.ENROLL_PORT}`);
    const rows = await queryRows<{ token_hash: string }>(
      t.cp.database.db,
      sql`SELECT token_hash FROM node_enrollment_tokens WHERE node_id = ${node.id}`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.token_hash).not.toContain(body.token);
    // The CA's private key is encrypted at rest.
    const [ca] = await queryRows<{ key_enc: string }>(
      t.cp.database.db,
      sql`SELECT key_enc FROM pki_authorities`,
    );
    expect(ca!.key_enc).toMatch(/^v1:/);
    expect(ca!.key_enc).not.toContain("PRIVATE KEY");
  });

  it("the policy document round-trips; an oversized one is refused", async () => {
    const node = (await createNode({ name: "pol", address: "a" })).json();
    const doc = { usage_interval_seconds: 15, custom: { anything: ["goes", 1, true] } };
    expect(
      (await t.call(admin, { method: "PUT", url: `/nodes/${node.id}/policy`, payload: doc })).statusCode,
    ).toBe(200);
    expect((await t.call(admin, { method: "GET", url: `/nodes/${node.id}/policy` })).json()).toEqual(doc);
    const big = await t.call(admin, {
      method: "PUT",
      url: `/nodes/${node.id}/policy`,
      payload: { big: "x".repeat(70_000) },
    });
    expect(big.statusCode).toBe(413);
  });

  it("health of a node that never connected says so", async () => {
    const node = (await createNode({ name: "h", address: "a" })).json();
    const res = await t.call(admin, { method: "GET", url: `/nodes/${node.id}/health` });
    expect(res.json()).toMatchObject({ status: "never_connected", connected: false, applied_revision: "0" });
  });

  it("another tenant's node is not found, and cannot be listed", async () => {
    const node = (await createNode({ name: "mine", address: "a" })).json();
    const other = t.world.ownerB;
    expect((await t.call(other, { method: "GET", url: `/nodes/${node.id}` })).statusCode).toBe(404);
    expect(
      (await t.call(other, { method: "GET", url: `/nodes?tenant_id=${t.world.tenantA}` })).statusCode,
    ).toBe(404);
  });

  it("deleting a node revokes its certificates", async () => {
    const node = (await createNode({ name: "gone", address: "a" })).json();
    await t.cp.database.db.execute(sql`INSERT INTO node_certificates (serial_hex, node_id, tenant_id, fingerprint_sha256,
      not_before, not_after, issued_via) VALUES ('abcd', ${node.id}, ${t.world.tenantA}, 'f', now(), now() + interval '1 day', 'enroll')`);
    expect((await t.call(admin, { method: "DELETE", url: `/nodes/${node.id}` })).statusCode).toBe(204);
    expect(await t.cp.enrollment.isRevoked("abcd")).toBe(true);
  });
});
