// Processes, ports, namespaces and cleanup for `npm run bench -- agent`. Everything the benchmark
// creates is named after its own pid (`vpbench<pid>` namespace, `/tmp/vpnpanel-bench-agent-<pid>`), so
// a later run can recognise — and remove — what a killed run left behind, and never touches anything
// else on the machine.

import { execFile } from "node:child_process";
import { readdir, readFile, rm } from "node:fs/promises";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const run = promisify(execFile);

export const STATE_PREFIX = "vpnpanel-bench-agent-";
export const NETNS_PREFIX = "vpbench";

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILLs `pid` only if its command line still contains `marker` (pids are reused). */
export async function killIfOurs(pid: number | null | undefined, marker: string): Promise<boolean> {
  if (!pid) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes(marker)) return false;
  try {
    process.kill(pid, "SIGKILL");
    return true;
  } catch {
    return false;
  }
}

export async function createNetns(name: string): Promise<void> {
  await run("ip", ["netns", "add", name]);
  await run("ip", ["-n", name, "link", "set", "lo", "up"]);
}

/**
 * Deletes the links in the namespace (wireguard-go exits with its device and removes its UAPI socket
 * from the shared /var/run/wireguard), SIGKILLs whatever still runs in it, then deletes it.
 */
export async function destroyNetns(name: string, socketPrefix?: string): Promise<void> {
  const { stdout: links } = await run("ip", ["-n", name, "-o", "link", "show"]).catch(() => ({ stdout: "" }));
  for (const m of links.matchAll(/^\d+:\s+([^:@\s]+)/gm)) {
    if (m[1] !== "lo") await run("ip", ["-n", name, "link", "del", m[1] as string]).catch(() => undefined);
  }
  // wireguard-go with 50k peers takes a moment to tear its device down.
  for (let i = 0; i < 30; i++) {
    const { stdout } = await run("ip", ["netns", "pids", name]).catch(() => ({ stdout: "" }));
    if (stdout.trim() === "") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { stdout } = await run("ip", ["netns", "pids", name]).catch(() => ({ stdout: "" }));
  for (const pid of stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
  await run("ip", ["netns", "del", name]).catch(() => undefined);
  if (socketPrefix) {
    const sockets = await readdir("/var/run/wireguard").catch(() => [] as string[]);
    for (const s of sockets) {
      if (s.startsWith(socketPrefix) && s.endsWith(".sock"))
        await rm(join("/var/run/wireguard", s), { force: true });
    }
  }
}

/**
 * Removes what an earlier benchmark run that was killed (SIGKILL, OOM) left behind: its namespace
 * (with the wireguard-go daemons in it), its v2ray (found through the pid files the driver writes in
 * the run's state dir) and the state dir. Only runs whose pid is gone are touched.
 */
export async function sweepStaleRuns(log: (line: string) => void): Promise<void> {
  const { stdout } = await run("ip", ["netns", "list"]).catch(() => ({ stdout: "" }));
  for (const m of stdout.matchAll(new RegExp(`^(${NETNS_PREFIX}(\\d+))\\b`, "gm"))) {
    const pid = Number(m[2]);
    if (pid === process.pid || alive(pid)) continue;
    log(`removing namespace ${m[1]} left by a killed benchmark run`);
    await destroyNetns(m[1] as string, `vb${pid % 100_000}w`);
  }
  for (const entry of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (!entry.startsWith(STATE_PREFIX)) continue;
    const pid = Number(entry.slice(STATE_PREFIX.length));
    if (!pid || pid === process.pid || alive(pid)) continue;
    const dir = join(tmpdir(), entry);
    for (const sub of await readdir(dir).catch(() => [] as string[])) {
      const pidFile = await readFile(join(dir, sub, "v2ray4.pid"), "utf8").catch(() => "");
      const corePid = Number(pidFile.trim().split(/\s+/)[0]);
      if (await killIfOurs(corePid, dir)) log(`killed v2ray ${corePid} left by a killed benchmark run`);
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** LIFO cleanup actions; each runs once, errors are reported and do not stop the others. */
export class Cleanup {
  private readonly actions: Array<{ name: string; fn: () => Promise<void> }> = [];

  add(name: string, fn: () => Promise<void>): () => Promise<void> {
    const action = { name, fn };
    this.actions.push(action);
    // Running it early (e.g. stopping one core before the next starts) removes it from the stack.
    return async () => {
      const i = this.actions.indexOf(action);
      if (i < 0) return;
      this.actions.splice(i, 1);
      await fn();
    };
  }

  async runAll(log: (line: string) => void): Promise<void> {
    while (this.actions.length > 0) {
      const action = this.actions.pop();
      if (!action) break;
      try {
        await withTimeout(action.fn(), 60_000, action.name);
      } catch (error) {
        log(`cleanup "${action.name}" failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
