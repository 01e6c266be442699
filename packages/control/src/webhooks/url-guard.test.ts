import { describe, expect, it } from "vitest";
import { checkUrlShape, isBlockedAddress, resolveTarget } from "./url-guard";

const strict = { allowHttp: false, allowPrivate: false };

describe("webhook URL guard", () => {
  it("blocks loopback, private, link-local, CGNAT, multicast and mapped forms of them", () => {
    for (const a of [
      "127.0.0.1",
      "10.1.2.3",
      "172.20.0.1",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "224.0.0.1",
      "255.255.255.255",
      "::1",
      "::",
      "fe80::1",
      "fd00::1",
      "::ffff:127.0.0.1",
      "::ffff:7f00:1",
      "::ffff:a9fe:a9fe",
      "64:ff9b::7f00:1",
      "not-an-ip",
    ]) {
      expect(isBlockedAddress(a), a).toBe(true);
    }
    for (const a of ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"]) {
      expect(isBlockedAddress(a), a).toBe(false);
    }
  });

  it("wants https without credentials, and names the url field", () => {
    expect(checkUrlShape("https://hooks.example.com/x", strict).hostname).toBe("hooks.example.com");
    for (const bad of [
      "http://hooks.example.com/x",
      "ftp://example.com",
      "https://user:pw@example.com/",
      "https://127.0.0.1/x",
      "https://[::1]/x",
      "https://localhost:8443/",
      "not a url",
    ]) {
      expect(() => checkUrlShape(bad, strict), bad).toThrowError(
        expect.objectContaining({ details: { field: "url" } }),
      );
    }
    expect(checkUrlShape("http://127.0.0.1:9/x", { allowHttp: true, allowPrivate: true }).port).toBe("9");
  });

  it("rejects a host when any address it resolves to is private", async () => {
    const resolver = async () => [
      { address: "93.184.216.34", family: 4 as const },
      { address: "10.0.0.5", family: 4 as const },
    ];
    await expect(resolveTarget(new URL("https://mixed.example/"), strict, resolver)).rejects.toThrow(
      /10\.0\.0\.5/,
    );
    const ok = await resolveTarget(
      new URL("https://mixed.example/"),
      { ...strict, allowPrivate: true },
      resolver,
    );
    expect(ok).toHaveLength(2);
    await expect(
      resolveTarget(new URL("https://nowhere.example/"), strict, async () => {
        throw new Error("ENOTFOUND");
      }),
    ).rejects.toThrow(/does not resolve/);
  });
});
