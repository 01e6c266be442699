// An in-process collector for the agent's integration tests: the real generated grpc-js services on
// 127.0.0.1, real certificates from @vpnpanel/pki (a TLS-only Enrollment server and mutual-TLS
// NodeControl servers), and authenticatePeer on every call. It stores usage under (node, seq) and
// acks a replay as a duplicate, like the real collector; what it sends otherwise is scripted by the test.

import { createServer } from "node:net";
import * as grpc from "@grpc/grpc-js";
import {
  authenticatePeer,
  type CaMaterial,
  createCa,
  enrollmentServerCredentials,
  issueNodeCert,
  issueServerCert,
  nodeControlServerCredentials,
  type TlsIdentity,
} from "@vpnpanel/pki";
import {
  type Ack,
  type AgentMessage,
  type CloseReason,
  type ControlMessage,
  type DesiredUser,
  type EnrollmentServer,
  EnrollmentService,
  type EnrollRequest,
  type HealthReport,
  type Hello,
  type NodeConfig,
  type NodeControlServer,
  NodeControlService,
  type Policy,
  type UsageBatch,
} from "@vpnpanel/proto";

export interface FakeSession {
  readonly address: string;
  readonly hello: Hello;
  readonly peerSerial: string;
  ended: boolean;
  send(message: ControlMessage): void;
  /** The link drops (the agent sees UNAVAILABLE). */
  drop(): void;
  close(reason: CloseReason, retryAfterSeconds?: number): void;
}

export interface FakeCollector {
  readonly ca: CaMaterial;
  readonly nodeId: string;
  readonly enrollAddress: string;
  readonly addresses: string[];
  readonly tokens: Set<string>;
  readonly enrollRequests: EnrollRequest[];
  renewCalls: number;
  /** Days of validity of certificates it issues. */
  certValidityDays: number;
  readonly hellos: Array<{ address: string; hello: Hello; peerSerial: string }>;
  readonly sessions: FakeSession[];
  readonly acks: Ack[];
  /** Every usage batch received, in arrival order (replays included). */
  readonly usageLog: UsageBatch[];
  /** Stored batches by seq: a replay is not stored twice. */
  readonly stored: Map<number, UsageBatch>;
  duplicates: number;
  readonly health: HealthReport[];
  autoAck: boolean;
  /** Runs on each usage batch before it is stored and acked (e.g. to inspect the agent's queue file). */
  onUsage: ((batch: UsageBatch) => void) | null;
  /** Answers a Hello; the default sends the policy. */
  onHello: (session: FakeSession) => void;
  policy: Policy;
  readonly revoked: Set<string>;
  active(): FakeSession | undefined;
  /** Total bytes stored per user (up, down). */
  totals(): Map<string, { up: number; down: number }>;
  stopListener(index: number): Promise<void>;
  startListener(index: number): Promise<void>;
  close(): Promise<void>;
}

export async function freeAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `127.0.0.1:${port}`;
}

export function snapshotMessages(params: {
  revision: bigint;
  users: DesiredUser[];
  nodeConfig?: NodeConfig;
  chunkSize?: number;
  usageCountedThroughSeq?: bigint;
}): ControlMessage[] {
  const size = params.chunkSize ?? 1_000;
  const out: ControlMessage[] = [];
  let index = 0;
  do {
    const users = params.users.slice(index * size, (index + 1) * size);
    out.push({
      body: {
        $case: "snapshot",
        value: {
          revision: params.revision,
          chunkIndex: index,
          last: (index + 1) * size >= params.users.length,
          users,
          nodeConfig: index === 0 ? params.nodeConfig : undefined,
          usageCountedThroughSeq: params.usageCountedThroughSeq ?? 0n,
        },
      },
    });
    index++;
  } while (index * size < params.users.length);
  return out;
}

async function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, creds, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return `127.0.0.1:${port}`;
}

export async function startFakeCollector(
  options: { nodeId?: string; listeners?: number } = {},
): Promise<FakeCollector> {
  const ca = await createCa({ commonName: "agent test CA", validityDays: 30 });
  const serverTls: TlsIdentity = await issueServerCert(ca, {
    dnsNames: ["localhost"],
    ips: ["127.0.0.1"],
    validityDays: 30,
  });
  const nodeId = options.nodeId ?? "node_test1";
  const servers: Array<grpc.Server | null> = [];
  const calls = new Set<grpc.ServerDuplexStream<AgentMessage, ControlMessage>>();

  const collector: FakeCollector = {
    ca,
    nodeId,
    enrollAddress: "",
    addresses: [],
    tokens: new Set(),
    enrollRequests: [],
    renewCalls: 0,
    certValidityDays: 7,
    hellos: [],
    sessions: [],
    acks: [],
    usageLog: [],
    stored: new Map(),
    duplicates: 0,
    health: [],
    autoAck: true,
    onUsage: null,
    onHello: (session) => session.send({ body: { $case: "policy", value: collector.policy } }),
    policy: {
      usageIntervalSeconds: 10,
      healthIntervalSeconds: 30,
      maxSamplesPerBatch: 0,
      lastStoredUsageSeq: 0n,
      enforceLeasesOnline: false,
    },
    revoked: new Set(),
    active: () => collector.sessions.filter((s) => !s.ended).at(-1),
    totals() {
      const out = new Map<string, { up: number; down: number }>();
      for (const batch of collector.stored.values()) {
        for (const s of batch.samples) {
          const t = out.get(s.userId) ?? { up: 0, down: 0 };
          t.up += Number(s.uplinkBytes);
          t.down += Number(s.downlinkBytes);
          out.set(s.userId, t);
        }
      }
      return out;
    },
    async stopListener(index) {
      const server = servers[index];
      servers[index] = null;
      for (const call of calls) {
        if ((call as unknown as { __index: number }).__index === index)
          call.emit("error", { code: grpc.status.UNAVAILABLE, details: "collector went away" });
      }
      server?.forceShutdown();
    },
    async startListener(index) {
      servers[index] = await listen(index, collector.addresses[index] as string);
    },
    async close() {
      for (const s of collector.sessions) s.ended = true;
      for (const server of servers) server?.forceShutdown();
    },
  };

  const isRevoked = (serial: string) => collector.revoked.has(serial);

  function nodeControl(index: number, address: string): NodeControlServer {
    return {
      renewCertificate(call, callback) {
        authenticatePeer(call, { isRevoked }).then(
          async (peer) => {
            collector.renewCalls++;
            const issued = await issueNodeCert(ca, {
              csrPem: call.request.csrPem,
              nodeId: peer.nodeId,
              validityDays: collector.certValidityDays,
            });
            callback(null, {
              certificatePem: issued.certPem,
              caChainPem: ca.certPem,
              notAfter: issued.info.notAfter,
            });
          },
          (error) => callback(error),
        );
      },
      session(call) {
        calls.add(call);
        (call as unknown as { __index: number }).__index = index;
        let session: FakeSession | null = null;
        call.on("error", () => {
          if (session) session.ended = true;
        });
        call.on("end", () => {
          if (session) session.ended = true;
          call.end();
        });
        call.on("close", () => calls.delete(call));
        call.on("data", (message: AgentMessage) => {
          const body = message.body;
          if (!session) {
            if (body?.$case !== "hello") {
              call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "Hello first" });
              return;
            }
            const hello = body.value;
            authenticatePeer(call, { isRevoked, claimedNodeId: hello.nodeId }).then(
              (peer) => {
                const s: FakeSession = {
                  address,
                  hello,
                  peerSerial: peer.serialHex,
                  ended: false,
                  send(msg) {
                    if (!s.ended) call.write(msg);
                  },
                  drop() {
                    s.ended = true;
                    call.emit("error", { code: grpc.status.UNAVAILABLE, details: "link dropped" });
                  },
                  close(reason, retryAfterSeconds = 0) {
                    call.write({
                      body: { $case: "close", value: { reason, message: "test", retryAfterSeconds } },
                    });
                    s.ended = true;
                    call.end();
                  },
                };
                session = s;
                collector.sessions.push(s);
                collector.hellos.push({ address, hello, peerSerial: peer.serialHex });
                collector.onHello(s);
              },
              (error) => call.emit("error", error),
            );
            return;
          }
          switch (body?.$case) {
            case "hello":
              collector.hellos.push({ address, hello: body.value, peerSerial: session.peerSerial });
              collector.onHello(session);
              return;
            case "ack":
              collector.acks.push(body.value);
              return;
            case "health":
              collector.health.push(body.value);
              return;
            case "usage": {
              const batch = body.value;
              collector.usageLog.push(batch);
              collector.onUsage?.(batch);
              const seq = Number(batch.seq);
              const duplicate = collector.stored.has(seq);
              if (duplicate) collector.duplicates++;
              else collector.stored.set(seq, batch);
              if (collector.autoAck)
                session.send({ body: { $case: "usageAck", value: { seq: batch.seq, duplicate } } });
              return;
            }
          }
        });
      },
    };
  }

  async function listen(index: number, address: string): Promise<grpc.Server> {
    const server = new grpc.Server();
    server.addService(NodeControlService, nodeControl(index, address));
    await bind(server, address, nodeControlServerCredentials({ ...serverTls, caPem: ca.certPem }));
    return server;
  }

  const enrollment: EnrollmentServer = {
    enroll(call, callback) {
      collector.enrollRequests.push(call.request);
      if (!collector.tokens.delete(call.request.token)) {
        callback({ code: grpc.status.UNAUTHENTICATED, details: "unknown or used enrollment token" });
        return;
      }
      issueNodeCert(ca, {
        csrPem: call.request.csrPem,
        nodeId,
        validityDays: collector.certValidityDays,
      }).then(
        (issued) =>
          callback(null, {
            nodeId,
            certificatePem: issued.certPem,
            caChainPem: ca.certPem,
            notAfter: issued.info.notAfter,
          }),
        (error) => callback({ code: grpc.status.INVALID_ARGUMENT, details: String(error) }),
      );
    },
  };
  const enrollServer = new grpc.Server();
  enrollServer.addService(EnrollmentService, enrollment);
  (collector as { enrollAddress: string }).enrollAddress = await bind(
    enrollServer,
    "127.0.0.1:0",
    enrollmentServerCredentials(serverTls),
  );
  for (let i = 0; i < (options.listeners ?? 1); i++) {
    const address = await freeAddress();
    collector.addresses.push(address);
    servers.push(await listen(i, address));
  }
  const closeListeners = collector.close;
  collector.close = async () => {
    await closeListeners();
    enrollServer.forceShutdown();
  };
  return collector;
}
