// Record framing for the append-only queue file: [u32 length][u32 CRC-32 of payload][payload].
// A crash mid-append leaves a short or corrupt last frame; the scanner stops at the first frame that
// does not check out and reports the offset where the valid prefix ends, so the file is truncated
// there and appends continue on a clean boundary.

const HEADER = 8;
/** Sanity cap: a length field above this is garbage, not a record. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zlib). zlib.crc32 only exists from Node 20.15, the project allows 20.11. */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) {
    crc = (CRC_TABLE[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  out.set(payload, HEADER);
  return out;
}

export interface ScanResult {
  records: Buffer[];
  /** Length of the valid prefix; bytes after it are a torn or corrupt tail. */
  validBytes: number;
}

export function scanFrames(data: Buffer): ScanResult {
  const records: Buffer[] = [];
  let offset = 0;
  while (offset + HEADER <= data.length) {
    const length = data.readUInt32BE(offset);
    const crc = data.readUInt32BE(offset + 4);
    if (length > MAX_RECORD_BYTES || offset + HEADER + length > data.length) break;
    const payload = data.subarray(offset + HEADER, offset + HEADER + length);
    if (crc32(payload) !== crc) break;
    records.push(payload);
    offset += HEADER + length;
  }
  return { records, validBytes: offset };
}
