import { describe, expect, it } from "vitest";
import { generateKeyPair, isWireguardKey, publicKeyOf } from "./keys";
import { addconfText, presharedKeyClearArgs, removeArgs, routeBatch } from "./peer-config";
import { redactKeys } from "./runner";

describe("peer commands", () => {
  it("addconf text carries PSKs in the file and replaces allowed ips", () => {
    expect(
      addconfText([
        { publicKey: "PUB1", presharedKey: "PSK1", allowedIps: ["10.0.0.2/32", "fd00::2/128"] },
        { publicKey: "PUB2", allowedIps: [] },
      ]),
    ).toBe(
      "[Peer]\nPublicKey = PUB1\nPresharedKey = PSK1\nAllowedIPs = 10.0.0.2/32, fd00::2/128\n\n[Peer]\nPublicKey = PUB2\nAllowedIPs = \n",
    );
  });
  it("chunks removals at 10k peers per wg set call (argv stays far below ARG_MAX)", () => {
    const keys = Array.from({ length: 25_000 }, (_, i) => `k${i}`);
    const calls = removeArgs("wg0", keys);
    expect(calls.map((c) => (c.length - 2) / 3)).toEqual([10_000, 10_000, 5_000]);
    expect(calls[0]?.slice(0, 5)).toEqual(["set", "wg0", "peer", "k0", "remove"]);
    expect(presharedKeyClearArgs("wg0", ["k"])).toEqual([
      ["set", "wg0", "peer", "k", "preshared-key", "/dev/null"],
    ]);
  });
  it("builds ip -batch route lines", () => {
    expect(routeBatch("replace", "wg1", ["10.0.4.0/22", "fd00::9/128"])).toBe(
      "route replace 10.0.4.0/22 dev wg1\nroute replace fd00::9/128 dev wg1",
    );
  });
});

describe("keys", () => {
  it("derives the public key (RFC 7748 §6.1 test vector)", () => {
    const priv = Buffer.from(
      "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
      "hex",
    ).toString("base64");
    const pub = Buffer.from(
      "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
      "hex",
    ).toString("base64");
    expect(publicKeyOf(priv)).toBe(pub);
  });
  it("generates clamped, well-formed key pairs", () => {
    const { privateKey, publicKey } = generateKeyPair();
    expect(isWireguardKey(privateKey) && isWireguardKey(publicKey)).toBe(true);
    const raw = Buffer.from(privateKey, "base64");
    expect((raw[0] as number) & 7).toBe(0);
    expect((raw[31] as number) & 0xc0).toBe(0x40);
    expect(publicKeyOf(privateKey)).toBe(publicKey);
  });
  it("masks anything shaped like a key in command errors", () => {
    const { privateKey } = generateKeyPair();
    expect(redactKeys(`Key is not the correct length or format: \`${privateKey}'`)).toBe(
      "Key is not the correct length or format: `<key>'",
    );
  });
});
