import * as grpc from "@grpc/grpc-js";
import {
  clientCredentials,
  createCsr,
  enrollmentCredentials,
  exportPrivateKeyPem,
  generateKeyPair,
} from "@vpnpanel/pki";
import {
  type AgentMessage,
  type ControlMessage,
  Engine,
  EnrollmentClient,
  type EnrollResponse,
  Hello,
  NodeControlClient,
  type UsageSample,
} from "@vpnpanel/proto";

// A minimal agent for tests and the load generator: real key pair, real CSR, real Enroll over TLS,
// a real mTLS Session stream. It records every ControlMessage so tests can assert on exactly what
// the collector sent.

export interface NodeIdentity {
  nodeId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
}

// The collector certificate names "localhost" too; dialing 127.0.0.1 with that name avoids Node's
// warning about an IP address as TLS server name.
const clientOptions = {
  "grpc.use_local_subchannel_pool": 1,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.ssl_target_name_override": "localhost",
};

export async function enroll(
  enrollAddress: string,
  caPem: string,
  token: string,
  hostname = "edge",
): Promise<NodeIdentity> {
  const keyPair = await generateKeyPair();
  const csrPem = await createCsr({ keyPair });
  const client = new EnrollmentClient(enrollAddress, enrollmentCredentials({ caPem }), clientOptions);
  try {
    const response = await new Promise<EnrollResponse>((resolve, reject) =>
      client.enroll({ token, csrPem, agentVersion: "test-agent/1", hostname }, (error, value) =>
        error ? reject(error) : resolve(value),
      ),
    );
    return {
      nodeId: response.nodeId,
      certPem: response.certificatePem,
      keyPem: await exportPrivateKeyPem(keyPair.privateKey),
      caPem: response.caChainPem,
    };
  } finally {
    client.close();
  }
}

export interface TestAgent {
  readonly messages: ControlMessage[];
  /** Resolves with the stream's final status (OK on a clean end). */
  readonly done: Promise<grpc.StatusObject | grpc.ServiceError>;
  send(message: AgentMessage): void;
  hello(appliedRevision?: bigint, nodeId?: string): void;
  usage(seq: bigint, samples: Array<Partial<UsageSample> & { userId: string }>, sampledAt?: Date): void;
  ack(opts: { appliedRevision?: bigint; commandIds?: string[] }): void;
  /** Waits for a message after index `from` matching `pred`. */
  waitFor(
    pred: (m: ControlMessage) => boolean,
    opts?: { timeoutMs?: number; from?: number },
  ): Promise<ControlMessage>;
  /** Messages of one kind. */
  of<K extends NonNullable<ControlMessage["body"]>["$case"]>(
    kind: K,
  ): Array<Extract<NonNullable<ControlMessage["body"]>, { $case: K }>["value"]>;
  close(): void;
}

export function connectAgent(
  address: string,
  id: Omit<NodeIdentity, "nodeId"> & { nodeId?: string },
): TestAgent {
  const client = new NodeControlClient(address, clientCredentials(id), clientOptions);
  const call = client.session();
  const messages: ControlMessage[] = [];
  const waiters = new Set<() => void>();
  call.on("data", (m: ControlMessage) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  const done = new Promise<grpc.StatusObject | grpc.ServiceError>((resolve) => {
    call.on("error", (e: grpc.ServiceError) => resolve(e));
    call.on("status", (s: grpc.StatusObject) => resolve(s));
  }).finally(() => {
    for (const w of waiters) w();
    client.close();
  });
  let ended = false;
  void done.then(() => {
    ended = true;
  });

  const agent: TestAgent = {
    messages,
    done,
    send(message) {
      if (!ended) call.write(message);
    },
    hello(appliedRevision = 0n, nodeId = id.nodeId ?? "") {
      agent.send({
        body: {
          $case: "hello",
          value: Hello.create({
            nodeId,
            agentVersion: "test-agent/1",
            appliedRevision,
            bootId: "boot-1",
            engines: [
              { engine: Engine.XRAY, core: "xray", version: "26.1.1", features: ["reality", "xtls_flow"] },
              { engine: Engine.WIREGUARD, core: "wireguard-go", version: "0.0.2022", features: [] },
            ],
          }),
        },
      });
    },
    usage(seq, samples, sampledAt = new Date()) {
      agent.send({
        body: {
          $case: "usage",
          value: {
            seq,
            sampledAt,
            samples: samples.map((s) => ({
              userId: s.userId,
              engine: s.engine ?? Engine.XRAY,
              uplinkBytes: s.uplinkBytes ?? 0n,
              downlinkBytes: s.downlinkBytes ?? 0n,
            })),
          },
        },
      });
    },
    ack({ appliedRevision = 0n, commandIds = [] }) {
      agent.send({ body: { $case: "ack", value: { appliedRevision, commandIds, failures: [] } } });
    },
    waitFor(pred, opts = {}) {
      const from = opts.from ?? 0;
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = messages.slice(from).find(pred);
          if (found) {
            cleanup();
            resolve(found);
          } else if (ended) {
            cleanup();
            reject(
              new Error(
                `stream ended before the expected message (got ${messages.map((m) => m.body?.$case).join(",")})`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting (got ${messages.map((m) => m.body?.$case).join(",")})`));
        }, opts.timeoutMs ?? 10_000);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    of(kind) {
      return messages.flatMap((m) => (m.body?.$case === kind ? [m.body.value as never] : []));
    },
    close() {
      if (!ended) call.end();
    },
  };
  return agent;
}

/** A call's outcome: the status code of a failed stream, or "ok". */
export async function outcome(agent: TestAgent, timeoutMs = 10_000): Promise<grpc.status | "ok"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error("the stream is still open")), timeoutMs);
  });
  try {
    const s = await Promise.race([agent.done, timeout]);
    return s.code === grpc.status.OK ? "ok" : s.code;
  } finally {
    clearTimeout(timer);
  }
}
