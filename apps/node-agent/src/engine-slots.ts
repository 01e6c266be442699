// An engine as the agent sees it: a driver plus what the session needs around it — how the node
// config maps to the driver's base config, what to report in Hello, and what to do at shutdown.
// The real slots wrap the Xray/v2ray and WireGuard drivers; tests plug in fake drivers behind the same
// shape, so everything above this file never branches on the engine.

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import {
  ENGINE_FEATURES,
  type EngineCapability,
  type NodeConfig,
  type WireguardInterfaceInfo,
} from "@vpnpanel/proto";
import type { Logger } from "pino";
import {
  type WireguardLocalSettings,
  wireguardBaseConfig,
  type XrayLocalSettings,
  xrayBaseConfig,
} from "./desired/node-config";
import { engineOfKind } from "./desired/user-mapping";
import { errorMessage } from "./engines/async-utils";
import type { EngineDriver, EngineKind } from "./engines/types";
import { createRunner } from "./engines/wireguard/runner";
import { createWireguardDriver, type WireguardDriver } from "./engines/wireguard/wireguard-driver";
import { type CoreFlavor, flavorByName, type XrayFlavorName } from "./engines/xray/flavor";
import { createXrayDriver } from "./engines/xray/xray-driver";

export interface EngineSlot {
  readonly kind: EngineKind;
  readonly driver: EngineDriver<unknown>;
  /** The driver's base config for this node config; null = the engine is not configured. Throws if invalid. */
  baseConfig(node: NodeConfig): unknown | null;
  /** Probed once at start (core version). */
  init(): Promise<void>;
  capability(): EngineCapability;
  wireguardInterfaces(): WireguardInterfaceInfo[];
  /** Agent shutdown: what stays running is the slot's decision (see docs/adr on agent shutdown). */
  shutdown(): Promise<void>;
}

// What the agent can serve on each core. Stream settings (REALITY, gRPC, …) reach the core verbatim,
// so Xray reports them; Shadowsocks 2022 is not listed because the driver cannot encode 2022 user
// accounts yet. v2ray 4.x lacks all of these, so its client links must not use any (ARCHITECTURE §6).
const XRAY_FEATURES = [
  "reality",
  "xtls_flow",
  "grpc_transport",
  "utls_fingerprint",
  "multi_user_shadowsocks",
  "list_inbounds",
  "get_inbound_users",
];
const V2RAY4_FEATURES: string[] = [];

export function xrayFeatures(flavor: CoreFlavor): string[] {
  const features = flavor.name === "xray" ? XRAY_FEATURES : V2RAY4_FEATURES;
  return features.filter((f) => (ENGINE_FEATURES as readonly string[]).includes(f));
}

/** First version-looking token of a command's output, or "" when it cannot be run. */
export function probeVersion(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(binary, args, { timeout: 5_000 }, (error, stdout, stderr) => {
      if (error && !stdout) return resolve("");
      const m = `${stdout}\n${stderr}`.match(/v?(\d+\.\d+(?:\.\d+)?)/);
      resolve(m?.[1] ?? "");
    });
  });
}

export function createXraySlot(options: {
  flavor: XrayFlavorName;
  binary?: string;
  stateDir: string;
  local: XrayLocalSettings;
  concurrency: number;
  logger: Logger;
}): EngineSlot {
  const flavor = flavorByName(options.flavor);
  const binary = options.binary ?? flavor.defaultBinary;
  const driver = createXrayDriver({
    flavor,
    binary,
    stateDir: options.stateDir,
    logger: options.logger,
    concurrency: options.concurrency,
  });
  let version = "";
  return {
    kind: "xray",
    driver: driver as EngineDriver<unknown>,
    baseConfig: (node) => xrayBaseConfig(node, options.local),
    async init() {
      version = await probeVersion(binary, flavor.name === "xray" ? ["version"] : ["-version"]);
    },
    capability: () => ({
      engine: engineOfKind("xray"),
      core: flavor.name === "xray" ? "xray" : "v2ray",
      version,
      features: xrayFeatures(flavor),
    }),
    wireguardInterfaces: () => [],
    // The core is our child process: it cannot be re-attached by the next agent (which stops an
    // orphan at start), so it stops with the agent, after the final usage reading.
    shutdown: () => driver.stop(),
  };
}

export function createWireguardSlot(options: {
  stateDir: string;
  local: WireguardLocalSettings;
  mode: "auto" | "kernel" | "userspace";
  netns?: string;
  downOnExit: boolean;
  logger: Logger;
}): EngineSlot & { driver: WireguardDriver } {
  const driver = createWireguardDriver({
    stateDir: options.stateDir,
    logger: options.logger,
    mode: options.mode,
    runner: createRunner(options.netns ? { netns: options.netns } : {}),
  });
  let version = "";
  // Before an interface exists, report what a new one would be.
  let expectedMode: "kernel" | "userspace" = options.mode === "kernel" ? "kernel" : "userspace";
  return {
    kind: "wireguard",
    driver,
    baseConfig: (node) => wireguardBaseConfig(node, options.local),
    async init() {
      version = await probeVersion("wg", ["--version"]);
      if (options.mode === "auto" && !options.netns && existsSync("/sys/module/wireguard"))
        expectedMode = "kernel";
    },
    capability: () => ({
      engine: engineOfKind("wireguard"),
      core: (driver.interfaces()[0]?.mode ?? expectedMode) === "kernel" ? "wireguard-kernel" : "wireguard-go",
      version,
      features: [],
    }),
    wireguardInterfaces: () => {
      const publicKey = driver.publicKey() ?? "";
      return driver.interfaces().map((i) => ({
        name: i.name,
        publicKey,
        listenPort: i.listenPort,
        peerCount: i.peers,
      }));
    },
    // Interfaces are kernel (or wireguard-go) state that outlives the agent: leaving them up keeps
    // every session alive across an agent restart, and the next start adopts them with their counters.
    async shutdown() {
      try {
        if (options.downOnExit) await driver.destroy();
        await driver.stop();
      } catch (error) {
        options.logger.error({ err: errorMessage(error) }, "wireguard shutdown failed");
      }
    },
  };
}
