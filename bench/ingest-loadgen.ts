// Load generator for `npm run bench -- ingest`: simulated node agents that speak the real protocol
// (mTLS Session stream, Hello, UsageBatch with per-node seq, acks) against a running collector.
// It runs as its own process so its CPU is visible apart from the collector's.
//
//   node --import tsx bench/ingest-loadgen.ts <identities.json> <address> <mode> [options as JSON]
// modes:
//   stream     every node sends batches of all its subscribers, `window` batches in flight (and, with
//              `intervalMs`, one batch per interval, nodes staggered), for `seconds`; reports acked
//              samples/s. With `crossing` (a file of subscription ids whose quota is nearly spent),
//              batch number `crossAt` of each node spends them and the delay from sending that batch
//              to receiving each removal is reported.
//   reconnect  connects every node, prints "ready", then waits until each one's stream dropped and
//              came back (a collector restart); reports when the last one was back in session.
// One JSON result line goes to stdout.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import type * as grpc from "@grpc/grpc-js";
import { clientCredentials } from "@vpnpanel/pki";
import { type AgentMessage, type ControlMessage, Engine, Hello, NodeControlClient } from "@vpnpanel/proto";

interface Identity {
  nodeId: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  subscriptions: string[];
}

const [identitiesFile, address, mode, optionsJson] = process.argv.slice(2);
if (!identitiesFile || !address || !mode) {
  process.stderr.write("usage: ingest-loadgen <identities.json> <address> <stream|reconnect> [options]\n");
  process.exit(2);
}
const options = JSON.parse(optionsJson ?? "{}") as {
  seconds?: number;
  window?: number;
  crossing?: string;
  seqStart?: number;
  /** Pace: one batch per node every intervalMs, nodes staggered evenly (0 = as fast as acks allow). */
  intervalMs?: number;
  /** Which batch of each node (0-based) spends the crossing subscribers' quota. */
  crossAt?: number;
};
const identities = JSON.parse(readFileSync(identitiesFile, "utf8")) as Identity[];
const channelOptions = {
  "grpc.use_local_subchannel_pool": 1,
  "grpc.ssl_target_name_override": "localhost",
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 64 * 1024 * 1024,
};

// One TLS context per node, as a real agent keeps it: building one parses the key and certificates.
const credentials = new Map<string, grpc.ChannelCredentials>();
function credentialsOf(id: Identity): grpc.ChannelCredentials {
  let c = credentials.get(id.nodeId);
  if (!c) {
    c = clientCredentials(id);
    credentials.set(id.nodeId, c);
  }
  return c;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Session {
  call: grpc.ClientDuplexStream<AgentMessage, ControlMessage>;
  client: NodeControlClient;
  ended: Promise<void>;
}

/** Opens a session; `onMessage` sees every control message. Resolves after Policy arrived. */
function open(id: Identity, applied: bigint, onMessage: (m: ControlMessage) => void): Promise<Session> {
  const client = new NodeControlClient(address!, credentialsOf(id), channelOptions);
  const call = client.session();
  let ended!: () => void;
  const endedP = new Promise<void>((r) => {
    ended = r;
  });
  call.on("error", () => ended());
  call.on("end", () => ended());
  call.on("status", () => ended());
  void endedP.then(() => client.close());
  return new Promise((resolve, reject) => {
    call.on("data", (m: ControlMessage) => {
      if (m.body?.$case === "policy") resolve({ call, client, ended: endedP });
      onMessage(m);
    });
    void endedP.then(() => reject(new Error("stream ended before Policy")));
    call.write({
      body: {
        $case: "hello",
        value: Hello.create({
          nodeId: id.nodeId,
          agentVersion: "loadgen/1",
          appliedRevision: applied,
          bootId: "loadgen",
          engines: [{ engine: Engine.XRAY, core: "xray", version: "26.1.1", features: [] }],
        }),
      },
    });
  });
}

async function main() {
  if (mode === "stream") {
    const result = await runStream(options.seconds ?? 20);
    const sorted = [...result.delays].sort((a, b) => a - b);
    const seconds = (result.stopAt - result.startedAt) / 1000;
    process.stdout.write(
      `${JSON.stringify({
        mode,
        nodes: identities.length,
        seconds,
        ackedSamples: result.ackedSamples,
        ackedBatches: result.ackedBatches,
        samplesPerSecond: Math.round(result.ackedSamples / seconds),
        removals: sorted.length,
        removalP50Ms: percentile(sorted, 50),
        removalP99Ms: percentile(sorted, 99),
        removalMaxMs: sorted.at(-1) ?? null,
      })}\n`,
    );
  } else if (mode === "reconnect") {
    process.stdout.write(`${JSON.stringify(await reconnect())}\n`);
  }
  process.exit(0);
}

await main();

async function runStream(seconds: number) {
  const window = options.window ?? 4;
  const crossing = new Set<string>(
    options.crossing ? JSON.parse(readFileSync(options.crossing, "utf8")) : [],
  );
  const delays: number[] = [];
  let ackedSamples = 0;
  let ackedBatches = 0;
  let connected = 0;
  let startedAt = 0;
  let stopAt = 0;
  let stop = false;
  const everyoneConnected = new Promise<void>((resolve) => {
    const check = setInterval(() => {
      if (connected === identities.length) {
        clearInterval(check);
        resolve();
      }
    }, 10);
  });
  void everyoneConnected.then(() => {
    startedAt = Date.now();
    setTimeout(() => {
      stop = true;
      stopAt = Date.now();
    }, seconds * 1000);
  });

  const interval = options.intervalMs ?? 0;
  const crossAt = options.crossAt ?? 0;
  await Promise.all(
    identities.map(async (id, index) => {
      const pending = new Map<bigint, number>();
      const crossingSent = new Map<string, number>();
      let snapshotDone!: () => void;
      const snapshot = new Promise<void>((r) => {
        snapshotDone = r;
      });
      let wake: (() => void) | null = null;
      const removed = (sub: string) => {
        const at = crossingSent.get(sub);
        if (at === undefined) return;
        delays.push(Date.now() - at);
        crossingSent.delete(sub);
      };
      const session = await open(id, 0n, (m) => {
        const b = m.body;
        if (!b) return;
        if (b.$case === "snapshot" && b.value.last) snapshotDone();
        else if (b.$case === "usageAck") {
          const n = pending.get(b.value.seq);
          if (n !== undefined) {
            pending.delete(b.value.seq);
            if (!stop) {
              ackedSamples += n;
              ackedBatches++;
            }
          }
          wake?.();
        } else if (b.$case === "command" && b.value.action?.$case === "removeUser")
          removed(b.value.action.value);
        else if (b.$case === "diff") for (const r of b.value.removals) removed(r);
      });
      await snapshot;
      connected++;
      await everyoneConnected;
      let seq = BigInt(options.seqStart ?? 1);
      let batchIndex = 0;
      const firstSendAt = Date.now() + (interval * index) / identities.length;
      while (!stop) {
        if (interval > 0) {
          const due = firstSendAt + batchIndex * interval;
          while (Date.now() < due && !stop)
            await new Promise((r) => setTimeout(r, Math.min(50, due - Date.now())));
          if (stop) break;
        }
        while (pending.size >= window && !stop) {
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, 1000);
          });
        }
        if (stop) break;
        const sentAt = Date.now();
        const samples = id.subscriptions.map((s) => {
          const spend = batchIndex === crossAt && crossing.has(s);
          if (spend) crossingSent.set(s, sentAt);
          return {
            userId: s,
            engine: Engine.XRAY,
            uplinkBytes: spend ? 1_000_000n : BigInt(1 + Math.floor(Math.random() * 1000)),
            downlinkBytes: BigInt(1 + Math.floor(Math.random() * 10_000)),
          };
        });
        batchIndex++;
        pending.set(seq, samples.length);
        const ok = session.call.write({
          body: { $case: "usage", value: { seq, sampledAt: new Date(sentAt), samples } },
        });
        seq++;
        if (!ok) await new Promise((r) => session.call.once("drain", r));
      }
      // Drain: every batch sent is acked (and every removal seen) before the stream closes, so the
      // next phase starts with an empty collector queue.
      const deadline = Date.now() + 120_000;
      while ((crossingSent.size > 0 || pending.size > 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      session.call.end();
      await Promise.race([session.ended, new Promise((r) => setTimeout(r, 2000))]);
      if (crossingSent.size > 0)
        process.stderr.write(`node ${id.nodeId}: ${crossingSent.size} removals not seen\n`);
    }),
  );
  return { ackedSamples, ackedBatches, delays, startedAt, stopAt };
}

async function reconnect() {
  const backoff = (attempt: number) => Math.min(4000, 500 * 2 ** attempt) * (0.5 + Math.random());
  let firstDrop = 0;
  const backAt: number[] = [];
  let upCount = 0;
  let allBack!: () => void;
  const done = new Promise<void>((r) => {
    allBack = r;
  });
  const ready = Promise.all(
    identities.map(async (id) => {
      let session = await open(id, 1n, () => {});
      upCount++;
      void (async () => {
        await session.ended;
        const droppedAt = Date.now();
        if (!firstDrop || droppedAt < firstDrop) firstDrop = droppedAt;
        for (let attempt = 0; ; attempt++) {
          await new Promise((r) => setTimeout(r, backoff(attempt)));
          try {
            session = await open(id, 1n, () => {});
            backAt.push(Date.now());
            if (backAt.length === identities.length) allBack();
            return;
          } catch {
            // collector not up yet
          }
        }
      })();
    }),
  );
  await ready;
  process.stdout.write(`ready ${upCount}\n`);
  // The driver writes the moment it stopped the collector on our stdin.
  const killedAt = await new Promise<number>((resolve) => {
    createInterface({ input: process.stdin }).on("line", (line) => {
      const n = Number(line.trim());
      if (Number.isFinite(n) && n > 0) resolve(n);
    });
  });
  await done;
  const last = Math.max(...backAt);
  return {
    mode: "reconnect",
    nodes: identities.length,
    allBackSecondsFromStop: (last - killedAt) / 1000,
    allBackSecondsFromFirstDrop: (last - firstDrop) / 1000,
  };
}
