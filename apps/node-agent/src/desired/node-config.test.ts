import { describe, expect, it } from "vitest";
import { parseXrayInbounds, wireguardBaseConfig, xrayBaseConfig } from "./node-config";

const local = { apiPort: 10085, logLevel: "warning" as const };

describe("node config → Xray base config", () => {
  it("reads ordinary Xray inbound objects (TLS + WebSocket, Shadowsocks, VLESS flow)", () => {
    const stream = {
      network: "ws",
      security: "tls",
      wsSettings: { path: "/ws", headers: { Host: "cdn.example" } },
      tlsSettings: {
        serverName: "edge.example",
        alpn: ["http/1.1"],
        certificates: [{ certificateFile: "/etc/x/cert.pem", keyFile: "/etc/x/key.pem" }],
      },
    };
    const sniffing = { enabled: true, destOverride: ["http", "tls"] };
    const inbounds = parseXrayInbounds(
      JSON.stringify([
        {
          tag: "vless-ws",
          listen: "0.0.0.0",
          port: 443,
          protocol: "vless",
          settings: { clients: [], decryption: "none", flow: "xtls-rprx-vision" },
          streamSettings: stream,
          sniffing,
        },
        {
          tag: "ss",
          port: 8388,
          protocol: "shadowsocks",
          settings: { method: "aes-256-gcm", network: "tcp,udp" },
        },
        { tag: "vmess", port: 10000, protocol: "vmess" },
      ]),
    );
    expect(inbounds).toEqual([
      {
        tag: "vless-ws",
        protocol: "vless",
        port: 443,
        listen: "0.0.0.0",
        transport: "ws",
        wsPath: "/ws",
        wsHost: "cdn.example",
        tls: {
          certificateFile: "/etc/x/cert.pem",
          keyFile: "/etc/x/key.pem",
          serverName: "edge.example",
          alpn: ["http/1.1"],
        },
        vlessFlow: "xtls-rprx-vision",
        rawStreamSettings: stream,
        sniffing,
      },
      {
        tag: "ss",
        protocol: "shadowsocks",
        port: 8388,
        shadowsocksMethod: "aes-256-gcm",
        shadowsocksNetworks: ["tcp", "udp"],
      },
      { tag: "vmess", protocol: "vmess", port: 10000 },
    ]);
  });

  it("passes REALITY and gRPC stream settings through to the core unchanged", () => {
    const stream = {
      network: "grpc",
      security: "reality",
      grpcSettings: { serviceName: "svc" },
      realitySettings: {
        dest: "example.com:443",
        serverNames: ["example.com"],
        privateKey: "k",
        shortIds: ["ab"],
      },
    };
    const [def] = parseXrayInbounds(
      JSON.stringify([{ tag: "r", port: 443, protocol: "vless", streamSettings: stream }]),
    );
    expect(def?.rawStreamSettings).toEqual(stream);
    expect(def?.transport).toBeUndefined();
  });

  it("rejects what is malformed, naming the inbound", () => {
    const one = (inbound: unknown) => () => parseXrayInbounds(JSON.stringify([inbound]));
    expect(one({ tag: "d", port: 1, protocol: "dokodemo-door" })).toThrow(
      /inbound "d": unsupported protocol/,
    );
    expect(one({ tag: "p", port: 70000, protocol: "vless" })).toThrow(/invalid port/);
    expect(one({ tag: "s", port: 1, protocol: "shadowsocks" })).toThrow(/settings.method/);
    expect(one({ tag: "t", port: 1, protocol: "trojan", streamSettings: { security: "tls" } })).toThrow(
      /TLS needs certificates/,
    );
    expect(one({ port: 1, protocol: "trojan" })).toThrow(/inbound #0 has no tag/);
    expect(() => parseXrayInbounds("{")).toThrow(/not valid JSON/);
  });

  it("an empty inbound list means the core is not run", () => {
    const node = { xrayInboundsJson: "", wireguardInterfaces: [] };
    expect(xrayBaseConfig(node, local)).toBeNull();
    expect(xrayBaseConfig({ ...node, xrayInboundsJson: "[]" }, local)).toBeNull();
    expect(
      xrayBaseConfig({ ...node, xrayInboundsJson: '[{"tag":"t","port":1,"protocol":"trojan"}]' }, local),
    ).toEqual({ apiPort: 10085, logLevel: "warning", inbounds: [{ tag: "t", protocol: "trojan", port: 1 }] });
  });
});

describe("node config → WireGuard base config", () => {
  const wgLocal = { interfacePrefix: "wg", listenPort: 51820, peersPerInterface: 50_000 };
  it("takes addresses, port and MTU from the first interface; names come from the agent", () => {
    expect(
      wireguardBaseConfig(
        {
          xrayInboundsJson: "",
          wireguardInterfaces: [
            { name: "edge0", listenPort: 0, addresses: ["10.8.0.1/16", "fd00::1/64"], mtu: 1380 },
          ],
        },
        wgLocal,
      ),
    ).toEqual({
      interfacePrefix: "wg",
      listenPort: 51820,
      addresses: ["10.8.0.1/16", "fd00::1/64"],
      peersPerInterface: 50_000,
      mtu: 1380,
    });
    expect(wireguardBaseConfig({ xrayInboundsJson: "", wireguardInterfaces: [] }, wgLocal)).toBeNull();
  });
});
