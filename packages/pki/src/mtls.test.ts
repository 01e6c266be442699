import { connect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import {
  type AgentMessage,
  CloseReason,
  type ControlMessage,
  EnrollmentClient,
  type EnrollmentServer,
  EnrollmentService,
  Hello,
  NodeControlClient,
  type NodeControlServer,
  NodeControlService,
} from "@vpnpanel/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CaMaterial, createCa, issueNodeCert, issueServerCert } from "./ca";
import { createCsr, exportPrivateKeyPem, generateKeyPair } from "./csr";
import {
  authenticatePeer,
  clientCredentials,
  enrollmentCredentials,
  enrollmentServerCredentials,
  nodeControlServerCredentials,
  type PeerAuthError,
  type PeerIdentity,
} from "./mtls";

// A real grpc-js server on 127.0.0.1 with the generated NodeControl service. Every rejection
// here comes from the TLS handshake or from authenticatePeer, never from a mock.

let ca: CaMaterial;
let otherCa: CaMaterial;
const revoked = new Set<string>();
let clockOverride: Date | undefined;
const handled: PeerIdentity[] = [];
const servers: grpc.Server[] = [];
const clients: grpc.Client[] = [];
let nodeControlAddress = "";
let enrollmentAddress = "";

const clientOptions = { "grpc.use_local_subchannel_pool": 1 };
const deadline = () => Date.now() + 5_000;

async function nodeIdentity(
  issuer: CaMaterial,
  nodeId: string,
  opts: { now?: Date; validityDays?: number } = {},
) {
  const keyPair = await generateKeyPair();
  const csrPem = await createCsr({ keyPair });
  const validityDays = opts.validityDays ?? 7;
  const { certPem, info } = await issueNodeCert(issuer, { csrPem, nodeId, validityDays, now: opts.now });
  return { certPem, keyPem: await exportPrivateKeyPem(keyPair.privateKey), info };
}

function authOptions(claimedNodeId?: string) {
  return { isRevoked: (serial: string) => revoked.has(serial), claimedNodeId, now: clockOverride };
}

const nodeControl: NodeControlServer = {
  renewCertificate(call, callback) {
    authenticatePeer(call, authOptions()).then(
      (peer) => {
        handled.push(peer);
        callback(null, { certificatePem: peer.nodeId, caChainPem: "", notAfter: peer.notAfter });
      },
      (error: PeerAuthError) => callback(error),
    );
  },
  session(call) {
    call.once("data", (first: AgentMessage) => {
      if (first.body?.$case !== "hello") return call.emit("error", { code: grpc.status.FAILED_PRECONDITION });
      authenticatePeer(call, authOptions(first.body.value.nodeId)).then(
        (peer) => {
          handled.push(peer);
          const message = `hello ${peer.nodeId}`;
          call.write({
            body: {
              $case: "close",
              value: { reason: CloseReason.UNSPECIFIED, message, retryAfterSeconds: 0 },
            },
          });
          call.end();
        },
        (error: PeerAuthError) => call.emit("error", error),
      );
    });
  },
};

const enrollment: EnrollmentServer = {
  enroll(call, callback) {
    callback(null, { nodeId: `enrolled-${call.request.hostname}`, certificatePem: "", caChainPem: "" });
  },
};

async function listen(server: grpc.Server, creds: grpc.ServerCredentials): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", creds, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  servers.push(server);
  return `127.0.0.1:${port}`;
}

beforeAll(async () => {
  ca = await createCa({ commonName: "vpnpanel test CA", validityDays: 30 });
  otherCa = await createCa({ commonName: "someone else's CA", validityDays: 30 });
  const serverTls = await issueServerCert(ca, {
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
    validityDays: 30,
  });

  const mtlsServer = new grpc.Server();
  mtlsServer.addService(NodeControlService, nodeControl);
  nodeControlAddress = await listen(
    mtlsServer,
    nodeControlServerCredentials({ ...serverTls, caPem: ca.certPem }),
  );

  // The TLS-only port also (mis)registers NodeControl. This proves that authenticatePeer alone
  // refuses a peer that has no client certificate.
  const tlsServer = new grpc.Server();
  tlsServer.addService(EnrollmentService, enrollment);
  tlsServer.addService(NodeControlService, nodeControl);
  enrollmentAddress = await listen(tlsServer, enrollmentServerCredentials(serverTls));
});

afterAll(() => {
  for (const client of clients) client.close();
  for (const server of servers) server.forceShutdown();
});

function nodeControlClient(address: string, creds: grpc.ChannelCredentials): NodeControlClient {
  const client = new NodeControlClient(address, creds, clientOptions);
  clients.push(client);
  return client;
}

function renew(client: NodeControlClient): Promise<string> {
  return new Promise((resolve, reject) =>
    client.renewCertificate(
      { csrPem: "" },
      new grpc.Metadata(),
      { deadline: deadline() },
      (error, response) => (error ? reject(error) : resolve(response.certificatePem)),
    ),
  );
}

function hello(client: NodeControlClient, nodeId: string): Promise<ControlMessage[]> {
  return new Promise((resolve, reject) => {
    const received: ControlMessage[] = [];
    const call = client.session(new grpc.Metadata(), { deadline: deadline() });
    call.on("data", (message: ControlMessage) => received.push(message));
    call.on("error", reject);
    call.on("end", () => resolve(received));
    call.write({ body: { $case: "hello", value: Hello.create({ nodeId, agentVersion: "test" }) } });
  });
}

/**
 * grpc-js reports every failed handshake as UNAVAILABLE "Failed to connect". A raw TLS connection
 * to the same port shows what the server did. An accepted peer receives the server's HTTP/2
 * SETTINGS frame. Node destroys a socket whose client certificate fails verification before it
 * sends a single byte, and it sends an alert only when the certificate is missing.
 */
function rawTlsOutcome(address: string, identity?: { certPem: string; keyPem: string }): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve) => {
    const socket = connect({
      host,
      port: Number(port),
      ca: ca.certPem,
      cert: identity?.certPem,
      key: identity?.keyPem,
      ALPNProtocols: ["h2"],
    });
    socket.once("data", () => {
      resolve("served");
      socket.destroy();
    });
    socket.on("error", (error) => resolve(`refused: ${error.message}`));
    socket.on("close", () => resolve("refused: closed"));
  });
}

async function rejection(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  return promise.then(
    () => {
      throw new Error("the call was accepted");
    },
    (error: grpc.ServiceError) => error,
  );
}

describe("collector mTLS", () => {
  it("a valid node certificate is accepted and its node id read", async () => {
    const node = await nodeIdentity(ca, "node_good");
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    expect(await renew(client)).toBe("node_good");
    const messages = await hello(client, "node_good");
    expect(messages[0]?.body).toMatchObject({ $case: "close", value: { message: "hello node_good" } });
    expect(handled.at(-1)).toMatchObject({ nodeId: "node_good", serialHex: node.info.serialHex });
    expect(await rawTlsOutcome(nodeControlAddress, node)).toBe("served");
  });

  it("a client without a certificate is rejected by the TLS handshake", async () => {
    const before = handled.length;
    const client = nodeControlClient(nodeControlAddress, enrollmentCredentials({ caPem: ca.certPem }));
    const error = await rejection(renew(client));
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    expect(error.details).toMatch(/certificate required/);
    expect(await rawTlsOutcome(nodeControlAddress)).toMatch(/^refused: .*certificate required/);
    expect(handled.length).toBe(before);
  });

  it("a certificate from another CA is rejected by the TLS handshake", async () => {
    const before = handled.length;
    const node = await nodeIdentity(otherCa, "node_good"); // same node id, wrong issuer
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    expect((await rejection(renew(client))).code).toBe(grpc.status.UNAVAILABLE);
    expect(await rawTlsOutcome(nodeControlAddress, node)).toMatch(/^refused/);
    expect(handled.length).toBe(before);
  });

  it("an expired certificate is rejected by the TLS handshake", async () => {
    const before = handled.length;
    const node = await nodeIdentity(ca, "node_old", {
      now: new Date(Date.now() - 10 * 86_400_000),
      validityDays: 1,
    });
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    expect((await rejection(renew(client))).code).toBe(grpc.status.UNAVAILABLE);
    expect(await rawTlsOutcome(nodeControlAddress, node)).toMatch(/^refused/);
    expect(handled.length).toBe(before);
  });

  it("a certificate that expired during a long-lived connection is UNAUTHENTICATED", async () => {
    const node = await nodeIdentity(ca, "node_aging", { validityDays: 1 });
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    clockOverride = new Date(node.info.notAfter.getTime() + 1000);
    try {
      const error = await rejection(renew(client));
      expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(error.details).toMatch(/expired/);
    } finally {
      clockOverride = undefined;
    }
  });

  it("a revoked certificate is UNAUTHENTICATED", async () => {
    const node = await nodeIdentity(ca, "node_revoked");
    revoked.add(node.info.serialHex);
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    const error = await rejection(renew(client));
    expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(error.details).toMatch(/revoked/);
    expect((await rejection(hello(client, "node_revoked"))).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  it("a node that claims another node's id is PERMISSION_DENIED", async () => {
    const node = await nodeIdentity(ca, "node_a");
    const client = nodeControlClient(nodeControlAddress, clientCredentials({ ...node, caPem: ca.certPem }));
    const error = await rejection(hello(client, "node_b"));
    expect(error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(error.details).not.toContain("node_a");
  });

  it("enrollment works over server-only TLS without a client certificate", async () => {
    const client = new EnrollmentClient(
      enrollmentAddress,
      enrollmentCredentials({ caPem: ca.certPem }),
      clientOptions,
    );
    clients.push(client);
    const response = await new Promise<{ nodeId: string }>((resolve, reject) =>
      client.enroll({ token: "t", csrPem: "", agentVersion: "test", hostname: "edge-1" }, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
    expect(response.nodeId).toBe("enrolled-edge-1");
  });

  it("NodeControl reached over a TLS-only port is UNAUTHENTICATED", async () => {
    const client = nodeControlClient(enrollmentAddress, enrollmentCredentials({ caPem: ca.certPem }));
    const error = await rejection(renew(client));
    expect(error.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(error.details).toMatch(/client certificate is required/);
  });

  it("an agent does not trust a collector whose certificate comes from another CA", async () => {
    const node = await nodeIdentity(ca, "node_good");
    const client = nodeControlClient(
      nodeControlAddress,
      clientCredentials({ ...node, caPem: otherCa.certPem }),
    );
    expect((await rejection(renew(client))).code).toBe(grpc.status.UNAVAILABLE);
  });
});
