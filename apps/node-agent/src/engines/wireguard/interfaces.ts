// Creating or adopting a WireGuard interface. The kernel module is preferred (`ip link add … type
// wireguard`); where it is missing, wireguard-go provides the same device behind the same `wg` CLI.
// An existing interface is adopted as is: its peers and counters keep running across agent restarts.

import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import type { CommandRunner } from "./runner";

export type WireguardMode = "auto" | "kernel" | "userspace";

export interface InterfaceSpec {
  name: string;
  listenPort: number;
  privateKeyFile: string;
  /** Node addresses with prefix (interface 0 only), e.g. ["10.8.0.1/16", "fd42::1/64"]. */
  addresses: readonly string[];
  /** Routes this interface owns (slot ranges for index ≥ 1). */
  routes: readonly string[];
  mtu?: number;
}

export interface InterfaceState {
  name: string;
  mode: "kernel" | "userspace";
  /**
   * `${bootId}:${ifindex}`: changes whenever the device is re-created (ifindex grows within a boot,
   * the boot id changes across reboots), which is exactly when its peer counters restart from zero.
   */
  generation: string;
  adopted: boolean;
}

let bootIdCache: string | null = null;
export async function bootId(): Promise<string> {
  bootIdCache ??= (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "unknown")).trim();
  return bootIdCache;
}

/** Interface names → ifindex in the runner's namespace. */
export async function listLinks(runner: CommandRunner): Promise<Map<string, number>> {
  const { stdout } = await runner.run("ip", ["-o", "link", "show"]);
  const out = new Map<string, number>();
  for (const line of stdout.split("\n")) {
    const m = line.match(/^(\d+):\s+([^:@\s]+)[:@]/);
    if (m?.[1] && m[2]) out.set(m[2], Number(m[1]));
  }
  return out;
}

async function detectMode(runner: CommandRunner, name: string): Promise<"kernel" | "userspace"> {
  const { stdout } = await runner.run("ip", ["-d", "-o", "link", "show", "dev", name]);
  return /\bwireguard\b/.test(stdout) ? "kernel" : "userspace";
}

async function create(runner: CommandRunner, spec: InterfaceSpec, mode: WireguardMode, logger: Logger) {
  if (mode !== "userspace") {
    try {
      await runner.run("ip", ["link", "add", "dev", spec.name, "type", "wireguard"]);
      return "kernel" as const;
    } catch (error) {
      if (mode === "kernel") throw error;
      logger.info({ iface: spec.name }, "kernel WireGuard unavailable, using wireguard-go");
    }
  }
  // wireguard-go daemonizes; with LOG_LEVEL unset its daemon holds no pipe of ours open.
  await runner.run("wireguard-go", [spec.name], { env: { LOG_LEVEL: undefined } });
  // Its UAPI socket appears shortly after the parent returns.
  for (let attempt = 0; ; attempt++) {
    try {
      await runner.run("wg", ["show", spec.name, "listen-port"]);
      break;
    } catch (error) {
      if (attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return "userspace" as const;
}

export async function ensureInterface(
  runner: CommandRunner,
  spec: InterfaceSpec,
  mode: WireguardMode,
  logger: Logger,
): Promise<InterfaceState> {
  const links = await listLinks(runner);
  const adopted = links.has(spec.name);
  const actualMode = adopted ? await detectMode(runner, spec.name) : await create(runner, spec, mode, logger);
  // Idempotent on an adopted device: same key, same port ⇒ no peer is disturbed.
  await runner.run("wg", [
    "set",
    spec.name,
    "private-key",
    spec.privateKeyFile,
    "listen-port",
    String(spec.listenPort),
  ]);
  for (const address of spec.addresses) {
    await runner.run("ip", ["address", "replace", address, "dev", spec.name]);
  }
  await runner.run("ip", [
    "link",
    "set",
    "dev",
    spec.name,
    ...(spec.mtu ? ["mtu", String(spec.mtu)] : []),
    "up",
  ]);
  for (const route of spec.routes) {
    await runner.run("ip", ["route", "replace", route, "dev", spec.name]);
  }
  const ifindex = (await listLinks(runner)).get(spec.name);
  if (ifindex === undefined) throw new Error(`interface ${spec.name} vanished after setup`);
  logger.info(
    { iface: spec.name, mode: actualMode, adopted, listenPort: spec.listenPort },
    "interface ready",
  );
  return { name: spec.name, mode: actualMode, generation: `${await bootId()}:${ifindex}`, adopted };
}

/** Deleting the link also ends a wireguard-go daemon serving it. */
export async function deleteInterface(runner: CommandRunner, name: string): Promise<void> {
  await runner.run("ip", ["link", "del", "dev", name]).catch(() => undefined);
}
