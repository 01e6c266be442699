// Helpers for the engine e2e tests: free loopback ports, a TCP echo server, a minimal SOCKS5 client,
// a v2ray client process (socks → vless/vmess/trojan/shadowsocks), and namespace plumbing.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { createServer, type Server, Socket } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";

export const run = promisify(execFile);

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startEchoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as { port: number }).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Connects through a SOCKS5 proxy to 127.0.0.1:targetPort (or `host`:targetPort, sent as a domain name),
 * sends `bytes` bytes and returns how many came back before the echo completed, the connection
 * closed, or `timeoutMs` passed.
 */
export function socksEcho(
  socksPort: number,
  targetPort: number,
  bytes: number,
  timeoutMs = 5_000,
  host?: string,
): Promise<number> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let buffer = Buffer.alloc(0);
    let stage: "greeting" | "connect" | "data" = "greeting";
    let echoed = 0;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(echoed);
    };
    const timer = setTimeout(finish, timeoutMs);
    socket.on("error", finish);
    socket.on("close", finish);
    socket.on("data", (chunk: Buffer) => {
      if (stage === "data") {
        echoed += chunk.length;
        if (echoed >= bytes) finish();
        return;
      }
      buffer = Buffer.concat([buffer, chunk]);
      if (stage === "greeting" && buffer.length >= 2) {
        buffer = buffer.subarray(2);
        stage = "connect";
        const port = [targetPort >> 8, targetPort & 0xff];
        const address = host ? [3, host.length, ...Buffer.from(host, "ascii")] : [1, 127, 0, 0, 1];
        socket.write(Buffer.from([5, 1, 0, ...address, ...port]));
      }
      // The reply's bound address is IPv4 (10 bytes in all) from every server used here.
      if (stage === "connect" && buffer.length >= 10) {
        if (buffer[1] !== 0) return finish();
        stage = "data";
        echoed += buffer.length - 10;
        socket.write(Buffer.alloc(bytes, 0x61));
      }
    });
    socket.connect(socksPort, "127.0.0.1", () => socket.write(Buffer.from([5, 1, 0])));
  });
}

export type ClientOutbound =
  | { protocol: "vless"; port: number; id: string }
  | { protocol: "vmess"; port: number; id: string }
  | { protocol: "trojan"; port: number; password: string }
  | { protocol: "shadowsocks"; port: number; password: string; method: string };

function outboundSettings(o: ClientOutbound): Record<string, unknown> {
  const address = "127.0.0.1";
  switch (o.protocol) {
    case "vless":
      return { vnext: [{ address, port: o.port, users: [{ id: o.id, encryption: "none" }] }] };
    case "vmess":
      return { vnext: [{ address, port: o.port, users: [{ id: o.id, alterId: 0, security: "auto" }] }] };
    case "trojan":
      return { servers: [{ address, port: o.port, password: o.password }] };
    case "shadowsocks":
      return { servers: [{ address, port: o.port, method: o.method, password: o.password }] };
  }
}

/** A v2ray client with one SOCKS inbound per outbound; returns the socks ports by outbound index. */
export async function startV2rayClient(
  dir: string,
  outbounds: ClientOutbound[],
): Promise<{ socksPorts: number[]; proc: ChildProcess; stop(): Promise<void> }> {
  const socksPorts = await Promise.all(outbounds.map(() => freePort()));
  const config = {
    log: { loglevel: "warning", access: "none" },
    inbounds: socksPorts.map((port, i) => ({
      tag: `socks${i}`,
      listen: "127.0.0.1",
      port,
      protocol: "socks",
      settings: { auth: "noauth", udp: false },
    })),
    outbounds: outbounds.map((o, i) => ({
      tag: `out${i}`,
      protocol: o.protocol,
      settings: outboundSettings(o),
    })),
    routing: {
      rules: outbounds.map((_, i) => ({ type: "field", inboundTag: [`socks${i}`], outboundTag: `out${i}` })),
    },
  };
  const path = join(dir, "client.json");
  await writeFile(path, JSON.stringify(config));
  const proc = spawn("v2ray", ["-config", path], { stdio: "ignore" });
  for (const port of socksPorts) await waitForPort(port);
  return {
    socksPorts,
    proc,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((resolve) => proc.once("exit", resolve));
      proc.kill("SIGKILL");
      await exited;
    },
  };
}

export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket();
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
      s.connect(port, "127.0.0.1");
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Polls `check` until it returns a value (not undefined) or the timeout passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Kills the processes living in a namespace we created (by pid), then deletes the namespace. */
export async function destroyNetns(name: string): Promise<void> {
  // Deleting the links first lets wireguard-go exit on its own and remove its UAPI socket, which
  // lives in the shared /var/run/wireguard, not in the namespace.
  const { stdout: links } = await run("ip", ["-n", name, "-o", "link", "show"]).catch(() => ({ stdout: "" }));
  for (const m of links.matchAll(/^\d+:\s+([^:@\s]+)/gm)) {
    if (m[1] !== "lo") await run("ip", ["-n", name, "link", "del", m[1] as string]).catch(() => undefined);
  }
  await new Promise((r) => setTimeout(r, 200));
  const { stdout } = await run("ip", ["netns", "pids", name]).catch(() => ({ stdout: "" }));
  for (const pid of stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
  await run("ip", ["netns", "del", name]).catch(() => undefined);
}
