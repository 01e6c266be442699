// Child process of `npm run bench -- agent`: makes v2ray create per-user traffic counters by opening one
// VLESS connection per user (raw VLESS v0 over TCP, no client core), each carrying a small echo round
// trip to local echo servers. It runs in its own process so its sockets and buffers are not counted in
// the agent's RSS that the benchmark reports.
//
// IPC: receives one TrafficRequest, sends TrafficProgress messages and one TrafficResult, then waits
// to be killed (or exits when the parent goes away).

import { createServer, type Server, Socket } from "node:net";
import { type Population, uuidOf } from "./users";

export interface TrafficRequest {
  population: Population;
  /** Users [from, from + count) each make one connection. */
  from: number;
  count: number;
  vlessPort: number;
  concurrency: number;
  /** Payload per connection, echoed back: `bytes` up and `bytes` down per user. */
  bytes: number;
  echoServers: number;
}

export interface TrafficProgress {
  type: "progress";
  done: number;
}

export interface TrafficResult {
  type: "done";
  ok: number;
  failed: number;
  firstError: string | null;
  seconds: number;
}

function startEcho(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.pipe(socket);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({ server, port: (server.address() as { port: number }).port }),
    ),
  );
}

/** One VLESS v0 request: version, UUID, no addons, TCP to 127.0.0.1:target, then the payload. */
function vlessEcho(
  vlessPort: number,
  uuid: string,
  target: number,
  payload: Buffer,
  localAddress: string,
): Promise<string | null> {
  return new Promise((resolve) => {
    const header = Buffer.concat([
      Buffer.from([0]),
      Buffer.from(uuid.replace(/-/g, ""), "hex"),
      Buffer.from([0, 1, target >> 8, target & 0xff, 1, 127, 0, 0, 1]),
    ]);
    const want = 2 + payload.length; // response header (version, addons length) + echo
    let got = 0;
    let settled = false;
    const socket = new Socket();
    const finish = (error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(error);
    };
    const timer = setTimeout(() => finish(`timeout after ${got}/${want} bytes`), 15_000);
    socket.on("error", (error) => finish(error.message));
    socket.on("close", () => finish(got >= want ? null : `closed after ${got}/${want} bytes`));
    socket.on("data", (chunk: Buffer) => {
      got += chunk.length;
      if (got >= want) finish(null);
    });
    // Spreading the client side over 127.0.0.2-251 keeps 100k short connections clear of
    // ephemeral-port exhaustion while closed sockets sit in TIME_WAIT.
    socket.connect({ port: vlessPort, host: "127.0.0.1", localAddress }, () =>
      socket.write(Buffer.concat([header, payload])),
    );
  });
}

async function generate(request: TrafficRequest): Promise<TrafficResult> {
  const echoes = await Promise.all(Array.from({ length: Math.max(1, request.echoServers) }, startEcho));
  const payload = Buffer.alloc(request.bytes, 0x61);
  const started = performance.now();
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError: string | null = null;
  const worker = async () => {
    while (next < request.count) {
      const k = next++;
      const i = request.from + k;
      const echo = echoes[k % echoes.length] as { port: number };
      const error = await vlessEcho(
        request.vlessPort,
        uuidOf(request.population, i),
        echo.port,
        payload,
        `127.0.0.${2 + (k % 250)}`,
      );
      if (error) {
        failed++;
        firstError ??= `user ${i}: ${error}`;
      } else ok++;
      const done = ok + failed;
      if (done % 10_000 === 0) process.send?.({ type: "progress", done } satisfies TrafficProgress);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, request.concurrency) }, worker));
  const seconds = (performance.now() - started) / 1000;
  for (const e of echoes) e.server.close();
  return { type: "done", ok, failed, firstError, seconds };
}

process.once("message", (message: TrafficRequest) => {
  generate(message).then(
    (result) => process.send?.(result),
    (error: unknown) =>
      process.send?.({
        type: "done",
        ok: 0,
        failed: message.count,
        firstError: error instanceof Error ? error.message : String(error),
        seconds: 0,
      } satisfies TrafficResult),
  );
});
process.on("disconnect", () => process.exit(0));
