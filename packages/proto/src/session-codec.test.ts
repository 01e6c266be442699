import { describe, expect, it } from "vitest";
import { AgentMessage, ControlMessage, Engine, isEngineFeature } from "./index";

// Round trips through the generated codec, the same encode/decode functions grpc-js calls. They
// catch a wrong forceLong option or a oneof shape before any network test does.
describe("Session message codec", () => {
  it("a usage batch keeps a seq and byte counts above 2^53 exactly", () => {
    const seq = 2n ** 53n + 7n;
    const big = 2n ** 63n + 12345n; // uint64 above int64 max still round-trips
    const sampledAt = new Date("2026-03-01T12:00:00.123Z");
    const message: AgentMessage = {
      body: {
        $case: "usage",
        value: {
          seq,
          sampledAt,
          samples: [
            { userId: "usr_1", engine: Engine.XRAY, uplinkBytes: big, downlinkBytes: 1n },
            {
              userId: "usr_2",
              engine: Engine.WIREGUARD,
              uplinkBytes: 0n,
              downlinkBytes: 9_007_199_254_740_993n,
            },
          ],
        },
      },
    };
    const decoded = AgentMessage.decode(AgentMessage.encode(message).finish());
    expect(decoded).toEqual(message);
    if (decoded.body?.$case !== "usage") throw new Error("expected a usage body");
    expect(typeof decoded.body.value.seq).toBe("bigint");
    expect(decoded.body.value.seq).toBe(seq);
    expect(decoded.body.value.samples[1]?.downlinkBytes).toBe(9_007_199_254_740_993n);
  });

  it("a replayed batch encodes to the same bytes", () => {
    const batch = AgentMessage.create({
      body: { $case: "usage", value: { seq: 42n, sampledAt: new Date(0), samples: [] } },
    });
    expect(Buffer.from(AgentMessage.encode(batch).finish())).toEqual(
      Buffer.from(AgentMessage.encode(AgentMessage.decode(AgentMessage.encode(batch).finish())).finish()),
    );
  });

  it("a hello round-trips with capabilities and applied revision", () => {
    const hello: AgentMessage = {
      body: {
        $case: "hello",
        value: {
          nodeId: "node_7f3a",
          agentVersion: "0.1.0",
          engines: [
            { engine: Engine.XRAY, core: "v2ray", version: "4.34.0", features: [] },
            { engine: Engine.WIREGUARD, core: "wireguard-go", version: "0.0.20220316", features: [] },
          ],
          appliedRevision: 18_446_744_073_709_551_615n, // uint64 max
          wireguardInterfaces: [{ name: "wg0", publicKey: "pk=", listenPort: 51820, peerCount: 3 }],
          bootId: "b-1",
        },
      },
    };
    expect(AgentMessage.decode(AgentMessage.encode(hello).finish())).toEqual(hello);
  });

  it("a snapshot chunk carries users, leases and node config", () => {
    const message: ControlMessage = {
      body: {
        $case: "snapshot",
        value: {
          revision: 9n,
          chunkIndex: 0,
          last: true,
          usageCountedThroughSeq: 41n,
          nodeConfig: { xrayInboundsJson: "[]", wireguardInterfaces: [] },
          users: [
            {
              userId: "usr_1",
              email: "usr_1@t1",
              engines: [Engine.XRAY, Engine.WIREGUARD],
              xray: {
                uuid: "b831381d-6324-4d53-ad4f-8cda48b30811",
                trojanPassword: "t",
                shadowsocksPassword: "s",
                vmessAlterId: 0,
                vlessFlow: "",
              },
              wireguard: { publicKey: "k=", presharedKey: "", allowedIps: ["10.8.0.7/32"], interface: "" },
              lease: { remainingBytes: -1n, expiresAt: new Date("2027-01-01T00:00:00Z") },
              suspended: false,
            },
          ],
        },
      },
    };
    expect(ControlMessage.decode(ControlMessage.encode(message).finish())).toEqual(message);
  });

  it("a command keeps its oneof action", () => {
    const message = ControlMessage.create({
      body: {
        $case: "command",
        value: { id: "cmd_1", revision: 10n, action: { $case: "removeUser", value: "usr_1" } },
      },
    });
    const decoded = ControlMessage.decode(ControlMessage.encode(message).finish());
    expect(decoded.body).toEqual({
      $case: "command",
      value: { id: "cmd_1", revision: 10n, action: { $case: "removeUser", value: "usr_1" } },
    });
  });

  it("an unknown body from a newer peer decodes as an unset body", () => {
    // Field 15, a length-delimited empty message: a oneof case that this version does not know.
    const decoded = ControlMessage.decode(Uint8Array.from([(15 << 3) | 2, 0]));
    expect(decoded.body).toBeUndefined();
  });

  it("knows the feature vocabulary", () => {
    expect(isEngineFeature("reality")).toBe(true);
    expect(isEngineFeature("quantum")).toBe(false);
  });
});
