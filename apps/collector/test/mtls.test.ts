import * as grpc from "@grpc/grpc-js";
import { systemActor } from "@vpnpanel/control";
import {
  clientCredentials,
  createCa,
  createCsr,
  enrollmentCredentials,
  exportPrivateKeyPem,
  generateKeyPair,
  issueNodeCert,
} from "@vpnpanel/pki";
import { CloseReason, EnrollmentClient, NodeControlClient, type RenewResponse } from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectAgent, enroll, outcome } from "./support/agent";
import { createHarness, type Harness } from "./support/harness";

// The collector's mTLS guard, against the real collector with real certificates: every rejection
// named in ARCHITECTURE.md §5 has a case, plus enrollment and renewal.

let h: Harness;
let nodeId: string;

const opts = { "grpc.use_local_subchannel_pool": 1, "grpc.ssl_target_name_override": "localhost" };

async function identityFrom(
  ca: { certPem: string; keyPem: string },
  id: string,
  o: { now?: Date; days?: number } = {},
) {
  const keyPair = await generateKeyPair();
  const issued = await issueNodeCert(ca, {
    csrPem: await createCsr({ keyPair }),
    nodeId: id,
    validityDays: o.days ?? 7,
    now: o.now,
  });
  return {
    certPem: issued.certPem,
    keyPem: await exportPrivateKeyPem(keyPair.privateKey),
    serial: issued.info.serialHex,
  };
}

beforeAll(async () => {
  h = await createHarness();
  nodeId = await h.createNode();
});
afterAll(async () => {
  await h?.close();
});

describe("collector mTLS rejections", () => {
  it("accepts an enrolled node's certificate", async () => {
    const agent = h.agent(await h.enrollNode(nodeId));
    agent.hello(0n);
    await agent.waitFor((m) => m.body?.$case === "policy");
    agent.close();
    expect(await outcome(agent)).toBe("ok");
  });

  it("refuses a client without a certificate in the TLS handshake", async () => {
    const client = new NodeControlClient(
      h.collector.address,
      enrollmentCredentials({ caPem: h.collector.caPem }),
      opts,
    );
    const call = client.session();
    const status = await new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    expect(status.code).toBe(grpc.status.UNAVAILABLE);
    client.close();
  });

  it("refuses a certificate from another CA in the TLS handshake", async () => {
    const other = await createCa({ commonName: "someone else", validityDays: 30 });
    const agent = connectAgent(h.collector.address, {
      ...(await identityFrom(other, nodeId)),
      caPem: h.collector.caPem,
    });
    agent.hello(0n, nodeId);
    expect(await outcome(agent)).toBe(grpc.status.UNAVAILABLE);
  });

  it("refuses an expired certificate in the TLS handshake", async () => {
    const ca = await h.cp.ca.get();
    const old = await identityFrom(ca, nodeId, { now: new Date(Date.now() - 10 * 86_400_000), days: 1 });
    const agent = connectAgent(h.collector.address, { ...old, caPem: ca.certPem });
    agent.hello(0n, nodeId);
    expect(await outcome(agent)).toBe(grpc.status.UNAVAILABLE);
  });

  it("a certificate that expired while the connection lived is UNAUTHENTICATED at Hello", async () => {
    const identity = await h.enrollNode(nodeId);
    const start = h.clock.now();
    h.clock.set(new Date(start.getTime() + 200 * 86_400_000));
    try {
      const agent = connectAgent(h.collector.address, identity);
      agent.hello(0n);
      expect(await outcome(agent)).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      h.clock.set(start);
    }
  });

  it("a certificate our CA signed but never recorded counts as revoked", async () => {
    const ca = await h.cp.ca.get();
    const agent = connectAgent(h.collector.address, {
      ...(await identityFrom(ca, nodeId)),
      caPem: ca.certPem,
    });
    agent.hello(0n, nodeId);
    expect(await outcome(agent)).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("a node that claims another node's id is PERMISSION_DENIED", async () => {
    const other = await h.createNode();
    const agent = h.agent(await h.enrollNode(other));
    agent.hello(0n, nodeId);
    expect(await outcome(agent)).toBe(grpc.status.PERMISSION_DENIED);
  });

  it("revocation closes the live session with REVOKED, and the certificate is refused on the next call", async () => {
    const victim = await h.createNode();
    const identity = await h.enrollNode(victim);
    const live = h.agent(identity);
    live.hello(0n);
    await live.waitFor((m) => m.body?.$case === "policy");
    await h.cp.enrollment.revoke(systemActor(), victim, "compromised");
    const close = await live.waitFor((m) => m.body?.$case === "close");
    expect(close.body).toMatchObject({ value: { reason: CloseReason.REVOKED } });
    expect(await outcome(live)).toBe("ok");
    const again = h.agent(identity);
    again.hello(0n);
    expect(await outcome(again)).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("NodeControl is not served on the TLS-only enrollment port", async () => {
    const identity = await h.enrollNode(nodeId);
    const agent = connectAgent(h.collector.enrollAddress, identity);
    agent.hello(0n);
    expect(await outcome(agent)).toBe(grpc.status.UNIMPLEMENTED);
  });
});

describe("enrollment and renewal", () => {
  it("a token works once", async () => {
    const node = await h.createNode();
    const { token, caPem } = await h.cp.enrollment.createToken(systemActor(), node);
    const first = await enroll(h.collector.enrollAddress, caPem, token);
    expect(first.nodeId).toBe(node);
    await expect(enroll(h.collector.enrollAddress, caPem, token)).rejects.toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
  });

  it("an expired token is refused", async () => {
    const node = await h.createNode();
    const { token, caPem } = await h.cp.enrollment.createToken(systemActor(), node);
    const start = h.clock.now();
    h.clock.set(new Date(start.getTime() + (h.cp.config.ENROLLMENT_TOKEN_TTL_SECONDS + 1) * 1000));
    try {
      await expect(enroll(h.collector.enrollAddress, caPem, token)).rejects.toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
      });
    } finally {
      h.clock.set(start);
    }
  });

  it("a CSR that is not one is INVALID_ARGUMENT and does not burn the token", async () => {
    const node = await h.createNode();
    const { token, caPem } = await h.cp.enrollment.createToken(systemActor(), node);
    const client = new EnrollmentClient(h.collector.enrollAddress, enrollmentCredentials({ caPem }), opts);
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      client.enroll({ token, csrPem: "nope", agentVersion: "t", hostname: "x" }, (e) => resolve(e!)),
    );
    client.close();
    expect(error.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await enroll(h.collector.enrollAddress, caPem, token)).nodeId).toBe(node);
  });

  it("renewal over mTLS issues a new certificate; the first session with it retires the old one", async () => {
    const node = await h.createNode();
    const old = await h.enrollNode(node);
    const client = new NodeControlClient(h.collector.address, clientCredentials(old), opts);
    const keyPair = await generateKeyPair();
    const csrPem = await createCsr({ keyPair });
    const renewed = await new Promise<RenewResponse>((resolve, reject) =>
      client.renewCertificate({ csrPem }, (e, r) => (e ? reject(e) : resolve(r))),
    );
    client.close();
    const fresh = {
      ...old,
      certPem: renewed.certificatePem,
      keyPem: await exportPrivateKeyPem(keyPair.privateKey),
    };
    const agent = h.agent(fresh);
    agent.hello(0n);
    await agent.waitFor((m) => m.body?.$case === "policy");
    const stale = h.agent(old);
    stale.hello(0n);
    expect(await outcome(stale)).toBe(grpc.status.UNAUTHENTICATED);
    agent.close();
  });
});
