import { createSecretBox } from "@vpnpanel/common";
import { describe, expect, it } from "vitest";
import { generateCredentials, openCredentials, sealCredentials } from "./credentials";

describe("credentials", () => {
  it("generates distinct sets and seals every secret to its user and column", async () => {
    const sets = await generateCredentials(600);
    expect(new Set(sets.map((s) => s.wgPublicKey)).size).toBe(600);
    expect(new Set(sets.map((s) => s.xrayUuid)).size).toBe(600);
    const box = createSecretBox(Buffer.alloc(32, 3));
    const sealed = sealCredentials(box, "usr_a", sets[0]!);
    expect(JSON.stringify(sealed)).not.toContain(sets[0]!.wgPrivateKey);
    expect(openCredentials(box, "usr_a", sealed)).toEqual(sets[0]);
    expect(() => openCredentials(box, "usr_b", sealed)).toThrow();
    // A ciphertext moved to another column does not open there either.
    expect(() =>
      openCredentials(box, "usr_a", { ...sealed, trojanPasswordEnc: sealed.shadowsocksPasswordEnc }),
    ).toThrow();
  });
});
