// Parser for `wg show IF dump` (wireguard-tools src/show.c dump_print; research/wireguard.md §11).
// Tab-separated. Line 1 is the interface: private-key public-key listen-port fwmark — the private key
// is printed unmasked, so this parser drops it on the spot and nothing downstream can log it.
// Peer lines: public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive.

export interface DumpInterface {
  publicKey: string | null;
  listenPort: number;
  fwmark: number | null;
}

export interface DumpPeer {
  publicKey: string;
  /** Unmasked in dump output; kept only to compare with the desired PSK. Never log it. */
  presharedKey: string | null;
  endpoint: string | null;
  allowedIps: string[];
  /** Unix seconds; 0 = never. */
  latestHandshake: number;
  /** Bytes received from the peer (client upload). */
  rx: number;
  /** Bytes sent to the peer (client download). */
  tx: number;
  /** Seconds, or null for "off". */
  keepalive: number | null;
}

export interface Dump {
  iface: DumpInterface;
  peers: DumpPeer[];
}

const none = (value: string | undefined): string | null =>
  value === undefined || value === "(none)" || value === "" ? null : value;

function toInt(value: string | undefined, field: string): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n < 0) throw new Error(`wg dump: bad ${field}`);
  return n;
}

export function parseDump(text: string): Dump {
  const lines = text.split("\n").filter((l) => l.length > 0);
  const head = lines[0]?.split("\t");
  if (!head || head.length < 4) throw new Error("wg dump: missing interface line");
  const fwmark = head[3] === "off" ? null : Number(head[3]);
  const iface: DumpInterface = {
    publicKey: none(head[1]),
    listenPort: toInt(head[2], "listen-port"),
    fwmark: fwmark === null || Number.isNaN(fwmark) ? null : fwmark,
  };
  const peers: DumpPeer[] = [];
  for (let i = 1; i < lines.length; i++) {
    const cols = (lines[i] as string).split("\t");
    if (cols.length < 8) throw new Error(`wg dump: peer line ${i} has ${cols.length} columns`);
    const allowed = none(cols[3]);
    peers.push({
      publicKey: cols[0] as string,
      presharedKey: none(cols[1]),
      endpoint: none(cols[2]),
      allowedIps: allowed ? allowed.split(",") : [],
      latestHandshake: toInt(cols[4], "latest-handshake"),
      rx: toInt(cols[5], "rx"),
      tx: toInt(cols[6], "tx"),
      keepalive: cols[7] === "off" ? null : toInt(cols[7], "keepalive"),
    });
  }
  return { iface, peers };
}
