import { DesiredUser, Engine } from "@vpnpanel/proto";
import { describe, expect, it } from "vitest";
import { createDesiredUsers } from "./compact-users";

const u = (id: string): DesiredUser => ({
  userId: id,
  email: id,
  engines: [Engine.XRAY, Engine.WIREGUARD],
  xray: { uuid: `uuid-${id}`, trojanPassword: "t", shadowsocksPassword: "s", vmessAlterId: 0, vlessFlow: "" },
  wireguard: { publicKey: `pk-${id}`, presharedKey: "", allowedIps: ["10.0.0.2/32"], interface: "" },
  lease: { remainingBytes: 5n, expiresAt: new Date("2026-03-01T00:00:00Z") },
  suspended: false,
});

describe("createDesiredUsers", () => {
  it("stores users encoded and gives back equal, independent copies in insertion order", () => {
    const users = createDesiredUsers([u("a"), u("b")]);
    users.set({ ...u("c"), suspended: true });
    users.delete("b");
    expect(users.size).toBe(2);
    expect(users.has("b")).toBe(false);
    expect(users.get("a")).toEqual(u("a"));
    expect([...users.keys()]).toEqual(["a", "c"]);
    expect([...users.values()].map((x) => x.suspended)).toEqual([false, true]);
    expect([...users].map(([id, x]) => [id, x.userId])).toEqual([
      ["a", "a"],
      ["c", "c"],
    ]);
    const copy = users.get("a") as DesiredUser;
    copy.suspended = true;
    expect(users.get("a")?.suspended).toBe(false);
  });

  it("encoded() yields each user's protobuf encoding", () => {
    const users = createDesiredUsers([u("a"), u("b")]);
    expect([...users.encoded()].map((bytes) => DesiredUser.decode(bytes))).toEqual([u("a"), u("b")]);
    users.clear();
    expect(users.size).toBe(0);
  });
});
