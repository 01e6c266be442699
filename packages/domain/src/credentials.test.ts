import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  isShadowsocks2022Key,
  isSubscriptionToken,
  isWireGuardKey,
  newPassword,
  newPresharedKey,
  newShadowsocks2022Key,
  newSubscriptionToken,
  newWireGuardKeyPair,
  newXrayUuid,
  PASSWORD_DEFAULT_LENGTH,
  SHADOWSOCKS_2022_KEY_BYTES,
  type Shadowsocks2022Method,
  wireGuardPublicKey,
} from "./credentials";

const zeros = (n: number) => new Uint8Array(n);
/** A random source that records how many bytes each call asked for. */
const recording = (sizes: number[], fill: (n: number) => Uint8Array) => (n: number) => {
  sizes.push(n);
  return fill(n);
};
const ones = (n: number) => new Uint8Array(n).fill(0xff);
const hasWg = spawnSync("wg", ["--version"]).status === 0;

describe("Xray UUID", () => {
  it("is a version 4 UUID, different every time", () => {
    const a = newXrayUuid();
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(newXrayUuid()).not.toBe(a);
  });
});

describe("passwords", () => {
  it("are URL-safe and of the requested length", () => {
    for (const len of [16, 17, 18, 19, 24, 64, 128]) {
      const p = newPassword(len);
      expect(p).toHaveLength(len);
      expect(p).toMatch(/^[A-Za-z0-9_-]+$/);
    }
    expect(newPassword()).toHaveLength(PASSWORD_DEFAULT_LENGTH);
  });

  it("draw only as many random bytes as the characters need, and use all of them", () => {
    const sizes: number[] = [];
    newPassword(24, recording(sizes, zeros));
    expect(sizes).toEqual([18]);
    expect(newPassword(24, zeros)).toBe("A".repeat(24));
    expect(newPassword(24, ones)).toBe("_".repeat(24));
  });

  it("use the whole alphabet roughly evenly (no modulo bias)", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 400; i++) for (const c of newPassword(128)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(64);
    const expected = (400 * 128) / 64;
    for (const n of counts.values()) expect(Math.abs(n - expected) / expected).toBeLessThan(0.2);
  });

  it("refuse lengths outside 16–128", () => {
    for (const len of [0, 15, 129, 20.5]) expect(() => newPassword(len)).toThrow(RangeError);
  });
});

describe("Shadowsocks 2022 keys", () => {
  it.each(Object.entries(SHADOWSOCKS_2022_KEY_BYTES) as [Shadowsocks2022Method, number][])(
    "%s gets a standard-base64 key of %i bytes",
    (method, bytes) => {
      const key = newShadowsocks2022Key(method);
      expect(Buffer.from(key, "base64")).toHaveLength(bytes);
      expect(key).toMatch(/^[A-Za-z0-9+/]+=*$/);
      expect(isShadowsocks2022Key(method, key)).toBe(true);
    },
  );

  it("a 16-byte key does not pass for a 32-byte method", () => {
    const key = newShadowsocks2022Key("2022-blake3-aes-128-gcm");
    expect(isShadowsocks2022Key("2022-blake3-aes-256-gcm", key)).toBe(false);
  });

  it("an unknown method is refused", () => {
    expect(() => newShadowsocks2022Key("aes-256-gcm" as Shadowsocks2022Method)).toThrow(RangeError);
    expect(isShadowsocks2022Key("aes-256-gcm" as Shadowsocks2022Method, "x")).toBe(false);
  });
});

describe("WireGuard keys", () => {
  it("a new pair is two distinct 32-byte base64 keys whose public half derives from the private", () => {
    const { privateKey, publicKey } = newWireGuardKeyPair();
    expect(isWireGuardKey(privateKey)).toBe(true);
    expect(isWireGuardKey(publicKey)).toBe(true);
    expect(privateKey).not.toBe(publicKey);
    expect(wireGuardPublicKey(privateKey)).toBe(publicKey);
  });

  it("matches the RFC 7748 §6.1 test vector", () => {
    const alicePriv = Buffer.from("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", "hex");
    const alicePub = Buffer.from("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", "hex");
    expect(wireGuardPublicKey(alicePriv.toString("base64"))).toBe(alicePub.toString("base64"));
  });

  it.skipIf(!hasWg)("agrees with `wg pubkey` for keys we generate and keys `wg genkey` generates", () => {
    for (let i = 0; i < 5; i++) {
      const { privateKey, publicKey } = newWireGuardKeyPair();
      expect(
        execFileSync("wg", ["pubkey"], { input: `${privateKey}\n` })
          .toString()
          .trim(),
      ).toBe(publicKey);
      const theirs = execFileSync("wg", ["genkey"]).toString().trim();
      const theirPub = execFileSync("wg", ["pubkey"], { input: `${theirs}\n` })
        .toString()
        .trim();
      expect(wireGuardPublicKey(theirs)).toBe(theirPub);
    }
  });

  it("a preshared key is 32 random bytes, base64", () => {
    const psk = newPresharedKey();
    expect(isWireGuardKey(psk)).toBe(true);
    expect(newPresharedKey()).not.toBe(psk);
    expect(newPresharedKey(zeros)).toBe(`${"A".repeat(43)}=`);
  });

  it.each([
    ["", false],
    ["A".repeat(44), false], // no padding: 33 bytes
    [`${"A".repeat(43)}=`, true],
    [`${"A".repeat(42)}B=`, false], // stray bits in the last character: not canonical
    [`${"A".repeat(42)}E=`, true],
    [`${"-".repeat(43)}=`, false], // base64url is not what wg prints
    [Buffer.alloc(16).toString("base64"), false],
  ])("isWireGuardKey(%j) is %s", (text, ok) => {
    expect(isWireGuardKey(text)).toBe(ok);
  });

  it("refuses to derive from a malformed private key", () => {
    expect(() => wireGuardPublicKey("not a key")).toThrow(RangeError);
  });
});

describe("subscription tokens", () => {
  it("carry 192 random bits as 32 URL-safe characters", () => {
    const sizes: number[] = [];
    const t = newSubscriptionToken(recording(sizes, ones));
    expect(sizes).toEqual([24]);
    expect(t).toBe("_".repeat(32));
    expect(isSubscriptionToken(newSubscriptionToken())).toBe(true);
  });

  it("do not repeat", () => {
    const seen = new Set(Array.from({ length: 1000 }, () => newSubscriptionToken()));
    expect(seen.size).toBe(1000);
  });

  it.each(["", "a".repeat(31), "a".repeat(33), `${"a".repeat(31)}/`, `${"a".repeat(31)}=`])(
    "reject the shape %j before any lookup",
    (t) => {
      expect(isSubscriptionToken(t)).toBe(false);
    },
  );
});
