import { describe, expect, it } from "vitest";
import { crc32, frame, scanFrames } from "./framing";

describe("framing", () => {
  it("computes the standard CRC-32", () => {
    expect(crc32(Buffer.from("123456789"))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array())).toBe(0);
  });
  it("round-trips frames and stops at a torn or corrupt tail", () => {
    const a = frame(Buffer.from("alpha"));
    const b = frame(Buffer.from("beta"));
    const all = Buffer.concat([a, b]);
    expect(scanFrames(all).records.map(String)).toEqual(["alpha", "beta"]);
    expect(scanFrames(all).validBytes).toBe(all.length);
    const torn = all.subarray(0, all.length - 2);
    expect(scanFrames(torn)).toMatchObject({ validBytes: a.length });
    const flipped = Buffer.from(all);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 0xff, flipped.length - 1);
    expect(scanFrames(flipped).records.map(String)).toEqual(["alpha"]);
    const header = Buffer.concat([a, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])]);
    expect(scanFrames(header).validBytes).toBe(a.length);
  });
});
