import { describe, expect, it } from "vitest";
import { createSecretBox, parseSecretKey, SecretBoxError } from "./secret-box";

const key = Buffer.alloc(32, 1);

describe("secret box", () => {
  it("round-trips and never produces the same ciphertext twice", () => {
    const box = createSecretBox(key);
    const a = box.encrypt("wg-private-key");
    expect(a).toMatch(/^v1:/);
    expect(a).not.toBe(box.encrypt("wg-private-key"));
    expect(box.decrypt(a)).toBe("wg-private-key");
  });

  it("rejects a tampered ciphertext, a wrong key and a wrong context", () => {
    const box = createSecretBox(key);
    const boxed = box.encrypt("secret", "ca.key");
    const raw = Buffer.from(boxed.slice(3), "base64");
    raw[raw.length - 1]! ^= 1;
    expect(() => box.decrypt(`v1:${raw.toString("base64")}`, "ca.key")).toThrow(SecretBoxError);
    expect(() => createSecretBox(Buffer.alloc(32, 2)).decrypt(boxed, "ca.key")).toThrow(SecretBoxError);
    expect(() => box.decrypt(boxed, "other")).toThrow(/wrong context/);
    expect(box.decrypt(boxed, "ca.key")).toBe("secret");
  });

  it("parses hex and base64 keys and refuses other lengths", () => {
    expect(parseSecretKey("01".repeat(32))).toEqual(key);
    expect(parseSecretKey(key.toString("base64"))).toEqual(key);
    expect(() => parseSecretKey("abcd")).toThrow(/32 bytes/);
    expect(() => createSecretBox(key).decrypt("v2:xx")).toThrow(/unknown secret format/);
  });
});
