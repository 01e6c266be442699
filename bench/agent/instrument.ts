// Measurement plumbing for `npm run bench -- agent`, kept out of the agent's code:
// - a grpc-js hook that counts every unary call the drivers make (per method and inbound tag) with a
//   latency histogram and reply sizes — it is how "an unchanged reconnect makes 0 calls" is asserted;
// - a CommandRunner wrapper that counts and times every `wg` / `ip` / `wireguard-go` command;
// - an RSS sampler (every 100 ms, per phase) and /proc readers for the cores' RSS and CPU.
// All of it uses fixed-size state, so instrumenting 300k calls does not inflate the RSS it measures.

import { readFile } from "node:fs/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import * as grpc from "@grpc/grpc-js";
import type { CommandRunner } from "@vpnpanel/node-agent/engines/wireguard/runner";

// ---------------------------------------------------------------------------------------------------
// Latency histogram: log buckets, 20 per decade from 10 µs to 1000 s.

const BUCKETS_PER_DECADE = 20;
const MIN_MS = 0.01;
const BUCKETS = 8 * BUCKETS_PER_DECADE;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS + 1);
  count = 0;
  sum = 0;
  max = 0;

  add(ms: number): void {
    const index =
      ms <= MIN_MS ? 0 : Math.min(BUCKETS, Math.ceil(Math.log10(ms / MIN_MS) * BUCKETS_PER_DECADE));
    this.counts[index] = (this.counts[index] ?? 0) + 1;
    this.count++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  /** Upper bound of the bucket holding quantile q (≤ 12 % above the true value). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const target = Math.ceil(q * this.count);
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.counts[i] ?? 0;
      if (seen >= target) return Math.min(this.max, MIN_MS * 10 ** (i / BUCKETS_PER_DECADE));
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }
}

// ---------------------------------------------------------------------------------------------------
// gRPC calls

export interface CallGroup {
  calls: number;
  errors: number;
  latency: Histogram;
  replyBytes: number;
  maxReplyBytes: number;
}

/** `AlterInboundRequest.tag` / `QueryStatsRequest.pattern`: field 1, a string, first in the message. */
function firstStringField(bytes: Uint8Array): string {
  if (bytes[0] !== 0x0a) return "";
  let length = 0;
  let shift = 0;
  let i = 1;
  for (; i < bytes.length && i < 6; i++) {
    const b = bytes[i] as number;
    length |= (b & 0x7f) << shift;
    shift += 7;
    if ((b & 0x80) === 0) break;
  }
  if (length > 200) return "";
  return Buffer.from(bytes.buffer, bytes.byteOffset + i + 1, Math.min(length, bytes.length - i - 1)).toString(
    "utf8",
  );
}

export interface GrpcRecorder {
  reset(): void;
  total(): number;
  groups(): Map<string, CallGroup>;
}

type UnaryFn = (...args: unknown[]) => unknown;

/** Installs the hook once per process (all grpc-js clients share Client.prototype). */
export function installGrpcRecorder(): GrpcRecorder {
  let groups = new Map<string, CallGroup>();
  let total = 0;
  const group = (key: string): CallGroup => {
    let g = groups.get(key);
    if (!g) {
      g = { calls: 0, errors: 0, latency: new Histogram(), replyBytes: 0, maxReplyBytes: 0 };
      groups.set(key, g);
    }
    return g;
  };
  const prototype = grpc.Client.prototype as unknown as { makeUnaryRequest: UnaryFn };
  const original = prototype.makeUnaryRequest;
  prototype.makeUnaryRequest = function (this: unknown, ...args: unknown[]) {
    const [method, serialize, deserialize, argument] = args as [
      string,
      unknown,
      (b: Buffer) => unknown,
      unknown,
    ];
    const name = method.slice(method.lastIndexOf("/") + 1);
    const detail = argument instanceof Uint8Array && name !== "GetStats" ? firstStringField(argument) : "";
    const g = group(detail ? `${name} ${detail}` : name);
    g.calls++;
    total++;
    const started = performance.now();
    args[2] = (bytes: Buffer) => {
      g.replyBytes += bytes.length;
      if (bytes.length > g.maxReplyBytes) g.maxReplyBytes = bytes.length;
      return deserialize(bytes);
    };
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === "function") {
      args[last] = (error: unknown, value: unknown) => {
        g.latency.add(performance.now() - started);
        if (error) g.errors++;
        (callback as (e: unknown, v: unknown) => void)(error, value);
      };
    }
    void serialize;
    return original.apply(this, args);
  };
  return {
    reset() {
      groups = new Map();
      total = 0;
    },
    total: () => total,
    groups: () => groups,
  };
}

// ---------------------------------------------------------------------------------------------------
// Commands (WireGuard driver)

export interface CommandGroup {
  calls: number;
  errors: number;
  ms: number;
  maxMs: number;
}

export interface CountingRunner extends CommandRunner {
  reset(): void;
  total(): number;
  groups(): Map<string, CommandGroup>;
}

/** `wg addconf`, `wg show … dump`, `ip -batch`: the command and the words that say what it does. */
function commandKey(command: string, args: readonly string[]): string {
  if (command === "wg") {
    if (args[0] === "show") return `wg show ${args[2] ?? ""}`.trim();
    if (args[0] === "set") return args.includes("private-key") ? "wg set private-key" : "wg set peers";
    return `wg ${args[0] ?? ""}`;
  }
  if (command === "ip") {
    const words = args.filter((a) => !a.startsWith("-") && a !== "dev");
    return `ip ${args.includes("-batch") ? "-batch" : words.slice(0, 2).join(" ")}`;
  }
  return command;
}

export function countingRunner(inner: CommandRunner): CountingRunner {
  let groups = new Map<string, CommandGroup>();
  let total = 0;
  return {
    netns: inner.netns,
    async run(command, args, options) {
      const key = commandKey(command, args);
      let g = groups.get(key);
      if (!g) {
        g = { calls: 0, errors: 0, ms: 0, maxMs: 0 };
        groups.set(key, g);
      }
      g.calls++;
      total++;
      const started = performance.now();
      try {
        return await inner.run(command, args, options);
      } catch (error) {
        g.errors++;
        throw error;
      } finally {
        const ms = performance.now() - started;
        g.ms += ms;
        if (ms > g.maxMs) g.maxMs = ms;
      }
    },
    reset() {
      groups = new Map();
      total = 0;
    },
    total: () => total,
    groups: () => groups,
  };
}

// ---------------------------------------------------------------------------------------------------
// Memory and CPU

export interface PhaseMemory {
  peakRss: number;
  peakHeapUsed: number;
  peakExternal: number;
  samples: number;
}

/** Samples process.memoryUsage() every `intervalMs` into the current phase (and at each phase switch). */
export class RssSampler {
  readonly phases = new Map<string, PhaseMemory>();
  private current = "setup";
  private timer: NodeJS.Timeout | null = null;

  start(intervalMs = 100): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  phase(name: string): void {
    this.sample();
    this.current = name;
    this.sample();
  }

  sample(): NodeJS.MemoryUsage {
    const m = process.memoryUsage();
    let p = this.phases.get(this.current);
    if (!p) {
      p = { peakRss: 0, peakHeapUsed: 0, peakExternal: 0, samples: 0 };
      this.phases.set(this.current, p);
    }
    p.samples++;
    if (m.rss > p.peakRss) p.peakRss = m.rss;
    if (m.heapUsed > p.peakHeapUsed) p.peakHeapUsed = m.heapUsed;
    if (m.external > p.peakExternal) p.peakExternal = m.external;
    return m;
  }

  stop(): void {
    this.sample();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  peakOf(names: readonly string[]): number {
    let peak = 0;
    for (const name of names) peak = Math.max(peak, this.phases.get(name)?.peakRss ?? 0);
    return peak;
  }
}

/** VmRSS of a process in bytes, 0 if it is gone. */
export async function procRss(pid: number | null | undefined): Promise<number> {
  if (!pid) return 0;
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const m = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m?.[1] ? Number(m[1]) * 1024 : 0;
}

/** utime + stime of a process in seconds (USER_HZ = 100 on Linux), 0 if it is gone. */
export async function procCpuSeconds(pid: number | null | undefined): Promise<number> {
  if (!pid) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11] ?? 0);
  const stime = Number(fields[12] ?? 0);
  return (utime + stime) / 100;
}

/** CPU seconds of this process's finished (waited-for) children: cutime + cstime of /proc/self/stat. */
export async function childrenCpuSeconds(): Promise<number> {
  const stat = await readFile("/proc/self/stat", "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13] ?? 0) + Number(fields[14] ?? 0)) / 100;
}

/** CPU seconds this process used since `since` (process.cpuUsage()). */
export function selfCpuSeconds(since: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1e6;
}

/** A full-GC function without `--expose-gc` on the command line (diagnostics at the very end only). */
export function forceGc(): void {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
}
