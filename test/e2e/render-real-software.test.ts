import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  renderSubscription,
  renderXrayJson,
  resolveProxies,
  type SubscriptionInput,
} from "../../packages/render/src/index";
import {
  combinationNode,
  makeSubscriber,
  NOW,
  validCombinations,
  WG_SERVER_PUBLIC_KEY,
  wireguardNode,
} from "../../packages/render/src/test-fixtures";

// The renderers' output fed to the real programs installed on this machine (Debian v2ray 4.34,
// wireguard-tools, wireguard-go). Nothing here sends a packet anywhere but loopback: v2ray only
// parses (-test), and WireGuard runs inside a fresh network namespace whose only interface is a
// downed loopback, with loopback endpoints, so even keepalives have no route out.

const run = promisify(execFile);
const tag = randomBytes(3).toString("hex");
const NETNS = `vpr-${tag}`;
const IFACE = `vprwg${tag}`;

let dir = "";
let wireguardGo: ChildProcess | null = null;

async function v2rayTest(name: string, config: unknown): Promise<{ code: number; output: string }> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(config));
  try {
    const { stdout, stderr } = await run("v2ray", ["-test", "-config", file]);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, output: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}

const netnsExec = (...args: string[]) => run("ip", ["netns", "exec", NETNS, ...args]);

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Kernel WireGuard when this kernel has it, else wireguard-go inside the namespace (same `wg` UAPI). */
async function createWireguardInterface(): Promise<void> {
  try {
    await run("ip", ["-n", NETNS, "link", "add", IFACE, "type", "wireguard"]);
    return;
  } catch {
    // "Unknown device type": no kernel module here; fall through to the userspace implementation.
  }
  const child = spawn("ip", ["netns", "exec", NETNS, "wireguard-go", "-f", IFACE], {
    env: { ...process.env, WG_PROCESS_FOREGROUND: "1" },
    stdio: "ignore",
  });
  wireguardGo = child;
  await waitFor(
    () => existsSync(`/var/run/wireguard/${IFACE}.sock`) || child.exitCode !== null,
    "wireguard-go",
  );
  if (child.exitCode !== null) throw new Error(`wireguard-go exited with ${child.exitCode}`);
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error("render e2e needs root (network namespaces, WireGuard)");
  for (const bin of ["v2ray", "wg", "wg-quick", "ip"]) await run("sh", ["-c", `command -v ${bin}`]);
  dir = await mkdtemp(join(tmpdir(), "vpr-render-"));
  await run("ip", ["netns", "add", NETNS]);
  await createWireguardInterface();
});

afterAll(async () => {
  if (wireguardGo && wireguardGo.exitCode === null) {
    const child = wireguardGo;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  await run("ip", ["netns", "del", NETNS]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Xray client JSON for a v2ray-4.x node is accepted by v2ray 4.34", () => {
  const proxies = resolveProxies(makeSubscriber(), [combinationNode("v2ray")], { now: NOW }).proxies;
  const configs = JSON.parse(renderXrayJson(proxies, { socksPort: 21080, httpPort: 21081 })) as unknown[];

  it("renders one config per valid combination", () => {
    expect(configs).toHaveLength(validCombinations("v2ray").length);
  });

  it.each(proxies.map((p, i) => [p.name, i] as const))("%s passes `v2ray -test`", async (name, index) => {
    const result = await v2rayTest(name, configs[index]);
    expect(result.output).toContain("Configuration OK");
    expect(result.code).toBe(0);
  });

  it.each(["limited", "expired", "disabled"] as const)(
    "the %s placeholder passes `v2ray -test`",
    async (status) => {
      const input: SubscriptionInput = { subscriber: makeSubscriber({ status }), nodes: [], now: NOW };
      const [config] = JSON.parse((await renderSubscription("xray-json", input)).body) as unknown[];
      const result = await v2rayTest(`placeholder-${status}`, config);
      expect(result.code).toBe(0);
    },
  );

  it("the check is real: an Xray-only (gRPC) config is refused by v2ray 4.34", async () => {
    const xrayProxies = resolveProxies(makeSubscriber(), [combinationNode("xray")], { now: NOW }).proxies;
    const index = xrayProxies.findIndex((p) => p.name === "vless-grpc-tls");
    const config = (JSON.parse(renderXrayJson(xrayProxies)) as unknown[])[index];
    const result = await v2rayTest("xray-only-grpc", config);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain("unknown transport protocol: grpc");
  });
});

// Loopback endpoints only: `wg setconf` resolves Endpoint host names, and a DNS lookup is traffic.
const wgNodes = [
  wireguardNode({
    wireguard: {
      host: "127.0.0.1",
      port: 51820,
      publicKey: WG_SERVER_PUBLIC_KEY,
      dns: ["1.1.1.1", "2606:4700:4700::1111"],
      mtu: 1420,
      persistentKeepalive: 25,
    },
  }),
  wireguardNode({
    id: "node_wg_v6",
    name: "IPv6 only",
    wireguard: {
      host: "::1",
      port: 443,
      publicKey: WG_SERVER_PUBLIC_KEY,
      allowedIps: ["10.0.0.0/8", "fd00::/8"],
    },
  }),
];

async function applyConf(fileName: string, conf: string): Promise<string> {
  const file = join(dir, fileName);
  await writeFile(file, conf);
  await chmod(file, 0o600);
  // wg-quick strip removes the wg-quick-only keys (Address, DNS, MTU) exactly as `wg-quick up` would.
  const { stdout: stripped } = await run("wg-quick", ["strip", file]);
  const strippedFile = join(dir, `${fileName}.stripped`);
  await writeFile(strippedFile, stripped);
  await netnsExec("wg", "setconf", IFACE, strippedFile);
  const { stdout } = await netnsExec("wg", "showconf", IFACE);
  return stdout;
}

describe("WireGuard .conf files are accepted by wg-quick strip + wg setconf", () => {
  it.each(wgNodes.map((n) => [n.name, n.id] as const))("node %s", async (_name, nodeId) => {
    const input: SubscriptionInput = { subscriber: makeSubscriber(), nodes: wgNodes, now: NOW, nodeId };
    const rendered = await renderSubscription("wireguard", input);
    const applied = await applyConf(rendered.fileName, rendered.body);
    expect(applied).toContain(`PublicKey = ${WG_SERVER_PUBLIC_KEY}`);
    expect(applied).toContain("PresharedKey = wIVWE20kNV2JZOs323wYpZ4lIjFqSb79VKwaiK6NgnY=");
    if (nodeId === "node_wg") {
      expect(applied).toContain("Endpoint = 127.0.0.1:51820");
      expect(applied).toMatch(/AllowedIPs = 0\.0\.0\.0\/0, ::\/0/);
      expect(applied).toContain("PersistentKeepalive = 25");
    } else {
      expect(applied).toContain("Endpoint = [::1]:443");
      expect(applied).toMatch(/AllowedIPs = 10\.0\.0\.0\/8, fd00::\/8/);
    }
  });

  it.each([
    ["blocked", { status: "disabled" as const }],
    ["no WireGuard engine", { engines: ["xray" as const] }],
  ])("the %s placeholder file", async (_case, patch) => {
    const input: SubscriptionInput = { subscriber: makeSubscriber(patch), nodes: wgNodes, now: NOW };
    const rendered = await renderSubscription("wireguard", input);
    const applied = await applyConf(rendered.fileName, rendered.body);
    expect(applied).toContain("Endpoint = 127.0.0.1:1");
  });
});
