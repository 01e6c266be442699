import { describe, expect, it } from "vitest";
import { parseDump } from "./dump";

const PRIV = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789+/abcdE=";
const P1 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const P2 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
const PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE=";

const dump = [
  `${PRIV}\tHIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\t51820\toff`,
  `${P1}\t${PSK}\t192.0.2.7:41234\t10.8.0.2/32,fd42::2/128\t1732200000\t123456\t7890\toff`,
  `${P2}\t(none)\t(none)\t(none)\t0\t0\t0\t25`,
  "",
].join("\n");

describe("parseDump", () => {
  it("parses the interface line without keeping the private key", () => {
    const parsed = parseDump(dump);
    expect(parsed.iface).toEqual({
      publicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
      listenPort: 51820,
      fwmark: null,
    });
    expect(JSON.stringify(parsed)).not.toContain(PRIV);
  });
  it("parses peer columns: psk, endpoint, comma-joined allowed ips, handshake, rx/tx, keepalive", () => {
    expect(parseDump(dump).peers[0]).toEqual({
      publicKey: P1,
      presharedKey: PSK,
      endpoint: "192.0.2.7:41234",
      allowedIps: ["10.8.0.2/32", "fd42::2/128"],
      latestHandshake: 1732200000,
      rx: 123456,
      tx: 7890,
      keepalive: null,
    });
  });
  it('maps "(none)" to null / empty and a zero handshake to 0 (never)', () => {
    expect(parseDump(dump).peers[1]).toEqual({
      publicKey: P2,
      presharedKey: null,
      endpoint: null,
      allowedIps: [],
      latestHandshake: 0,
      rx: 0,
      tx: 0,
      keepalive: 25,
    });
  });
  it("reads a fwmark and counters beyond 32 bits", () => {
    const text = `${PRIV}\t${P1}\t1\t0x1234\n${P2}\t(none)\t(none)\t10.0.0.1/32\t0\t8589934592\t1\toff\n`;
    const parsed = parseDump(text);
    expect(parsed.iface.fwmark).toBe(0x1234);
    expect(parsed.peers[0]?.rx).toBe(8589934592);
  });
  it("rejects truncated lines", () => {
    expect(() => parseDump(`${PRIV}\tx\t1\toff\n${P1}\t(none)\n`)).toThrow(/columns/);
    expect(() => parseDump("")).toThrow(/interface/);
  });
});
