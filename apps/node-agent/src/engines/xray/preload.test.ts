import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentUser } from "../types";
import type { XrayBaseConfig, XrayInboundDefinition } from "./base-config";
import { V2RAY4, XRAY } from "./flavor";
import { clientEntry, preloadable, writeCoreConfig } from "./preload";

const uuid = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
type XrayUser = AgentUser & { xray: NonNullable<AgentUser["xray"]> };
const user = (id: string, n: number, extra: Partial<XrayUser["xray"]> = {}): XrayUser => ({
  id,
  xray: { uuid: uuid(n), trojanPassword: `t${n}`, shadowsocksPassword: `s${n}`, ...extra },
});

const vless: XrayInboundDefinition = { tag: "vless-in", protocol: "vless", port: 1001 };
const vmess: XrayInboundDefinition = { tag: "vmess-in", protocol: "vmess", port: 1002 };
const trojan: XrayInboundDefinition = { tag: "trojan-in", protocol: "trojan", port: 1003 };
const ss: XrayInboundDefinition = {
  tag: "ss-in",
  protocol: "shadowsocks",
  port: 1004,
  shadowsocksMethod: "aes-256-gcm",
};

describe("preloadable", () => {
  it("keeps users the config loader accepts and leaves the rest to the API path", () => {
    const users = [
      user("a", 1),
      user("bad id", 2),
      user("b", 3, { uuid: "not-a-uuid" }),
      user("c", 1), // same UUID as a
      user("d", 4, { trojanPassword: "t5" }),
      user("e", 5), // same Trojan password as d
      user("f", 6, { trojanPassword: "" }),
      { id: "g" },
    ];
    expect(preloadable(V2RAY4, [vless, vmess, trojan], users).map((u) => u.id)).toEqual(["a", "d"]);
    // Without a Trojan inbound the Trojan password is not a key, and an empty one does not matter.
    expect(preloadable(V2RAY4, [vless], users).map((u) => u.id)).toEqual(["a", "d", "e", "f"]);
  });

  it("a later entry with the same id (any case) replaces an earlier one", () => {
    const users = [user("A", 1), user("b", 2), user("a", 3)];
    expect(preloadable(XRAY, [vless], users).map((u) => [u.id, u.xray.uuid])).toEqual([
      ["b", uuid(2)],
      ["a", uuid(3)],
    ]);
  });

  it("a user without a port for v2ray's per-user Shadowsocks is still preloaded on the shared inbounds", () => {
    const users = [user("a", 1, { shadowsocksPort: 20001 }), user("b", 2)];
    expect(preloadable(V2RAY4, [vless, ss], users).map((u) => u.id)).toEqual(["a", "b"]);
    expect(preloadable(XRAY, [vless, ss], users).map((u) => u.id)).toEqual(["a", "b"]);
  });
});

describe("writeCoreConfig", () => {
  let dir = "";
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const read = async (path: string) =>
    JSON.parse(await readFile(path, "utf8")) as {
      inbounds: Array<{ tag: string; settings: { clients?: Array<Record<string, unknown>> } }>;
    };

  it("puts every user into each shared inbound's clients, as the API would add them", async () => {
    dir = await mkdtemp(join(tmpdir(), "preload-"));
    const path = join(dir, "config.json");
    const base: XrayBaseConfig = { apiPort: 10085, inbounds: [vless, vmess, trojan, ss] };
    const users = Array.from({ length: 2_500 }, (_, i) => [`u${i}`, user(`u${i}`, i).xray] as const);
    await writeCoreConfig(path, V2RAY4, base, users);
    const config = await read(path);
    const clients = (tag: string) => config.inbounds.find((i) => i.tag === tag)?.settings.clients;
    expect(clients("vless-in")).toHaveLength(2_500);
    expect(clients("vless-in")?.[7]).toEqual({ id: uuid(7), email: "u7", level: 0 });
    expect(clients("vmess-in")?.[7]).toEqual({ id: uuid(7), email: "u7", level: 0, alterId: 0 });
    expect(clients("trojan-in")?.[2_499]).toEqual({ password: "t2499", email: "u2499", level: 0 });
    // v2ray 4.x Shadowsocks is one inbound per user, added through the API: not in the config.
    expect(config.inbounds.map((i) => i.tag)).toEqual(["api", "vless-in", "vmess-in", "trojan-in"]);
  });

  it("an empty user set gives the same config as before (empty clients)", async () => {
    dir = await mkdtemp(join(tmpdir(), "preload-"));
    const path = join(dir, "config.json");
    await writeCoreConfig(path, XRAY, { apiPort: 10085, inbounds: [vless, ss] }, []);
    const config = await read(path);
    expect(config.inbounds.map((i) => i.settings.clients)).toEqual([undefined, [], []]);
  });

  it("Xray's multi-user Shadowsocks clients carry the inbound's method; VMess has no alterId", () => {
    const creds = user("a", 1).xray;
    expect(clientEntry(XRAY, ss, "a", creds)).toEqual({
      password: "s1",
      method: "aes-256-gcm",
      email: "a",
      level: 0,
    });
    expect(clientEntry(XRAY, vmess, "a", creds)).toEqual({ id: uuid(1), email: "a", level: 0 });
    expect(clientEntry(XRAY, { ...vless, vlessFlow: "xtls-rprx-vision" }, "a", creds)).toEqual({
      id: uuid(1),
      email: "a",
      level: 0,
      flow: "xtls-rprx-vision",
    });
  });
});
