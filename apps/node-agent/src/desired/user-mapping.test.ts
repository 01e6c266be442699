import { type DesiredUser, Engine } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import { effectiveUsers, leaseFromProto, toAgentUser } from "./user-mapping";

const user = (overrides: Partial<DesiredUser> = {}): DesiredUser => ({
  userId: "sub_1",
  email: "display@example",
  engines: [Engine.XRAY, Engine.WIREGUARD],
  xray: { uuid: "u-1", trojanPassword: "t", shadowsocksPassword: "s", vmessAlterId: 0, vlessFlow: "" },
  wireguard: { publicKey: "pk", presharedKey: "", allowedIps: ["10.8.0.2/32"], interface: "" },
  suspended: false,
  ...overrides,
});

describe("DesiredUser → driver user", () => {
  it("keys every engine by the subscription id (the Xray email), not the display email", () => {
    expect(toAgentUser(user(), "xray")).toEqual({
      id: "sub_1",
      xray: { uuid: "u-1", trojanPassword: "t", shadowsocksPassword: "s" },
    });
    expect(toAgentUser(user(), "wireguard")).toEqual({
      id: "sub_1",
      wireguard: { publicKey: "pk", allowedIps: ["10.8.0.2/32"] },
    });
    expect(
      toAgentUser(user({ xray: { ...user().xray!, vmessAlterId: 4 } }), "xray")?.xray?.vmessAlterId,
    ).toBe(4);
    expect(
      toAgentUser(user({ wireguard: { ...user().wireguard!, presharedKey: "psk" } }), "wireguard")?.wireguard
        ?.presharedKey,
    ).toBe("psk");
  });

  it("needs both the engine in `engines` and its credentials", () => {
    expect(toAgentUser(user({ engines: [Engine.WIREGUARD] }), "xray")).toBeNull();
    expect(toAgentUser(user({ xray: undefined }), "xray")).toBeNull();
  });

  it("suspended and locally cut users are applied to no engine", () => {
    const users = [user(), user({ userId: "sub_2", suspended: true }), user({ userId: "sub_3" })];
    expect(effectiveUsers(users, "xray", (id) => id === "sub_3").map((u) => u.id)).toEqual(["sub_1"]);
  });

  it("leases: -1 bytes is unlimited; unlimited and never expiring is no lease", () => {
    const at = new Date("2026-02-01T00:00:00Z");
    expect(leaseFromProto(undefined, 5n)).toBeNull();
    expect(leaseFromProto({ remainingBytes: -1n, expiresAt: undefined }, 5n)).toBeNull();
    expect(leaseFromProto({ remainingBytes: -1n, expiresAt: at }, 5n)).toEqual({
      remainingBytes: null,
      expiresAt: at.getTime(),
      asOfSeq: 5,
    });
    expect(leaseFromProto({ remainingBytes: 0n, expiresAt: undefined }, 0n)).toEqual({
      remainingBytes: 0,
      expiresAt: null,
      asOfSeq: 0,
    });
  });
});
