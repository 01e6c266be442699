import type { WireguardProxy, XrayProxy } from "./resolve-proxies";
import type { Protocol, SecurityType, TransportType } from "./types";

// An independent reader of the share-link formats, written from the format descriptions rather than
// from share-links.ts, so tests can check that a rendered link says what we meant it to say.

/** What a vless/vmess/trojan/ss link carries; the node and core are not part of a link. */
export type ParsedXrayLink = Omit<XrayProxy, "nodeId" | "core">;
export type ParsedWireguardLink = Pick<
  WireguardProxy,
  | "kind"
  | "name"
  | "address"
  | "port"
  | "serverPublicKey"
  | "privateKey"
  | "presharedKey"
  | "addresses"
  | "mtu"
>;
export type ParsedLink = ParsedXrayLink | ParsedWireguardLink;

export class LinkParseError extends Error {}

interface UriParts {
  scheme: string;
  userinfo: string;
  address: string;
  port: number;
  params: Map<string, string>;
  fragment: string;
}

// Form-style "+" for space is tolerated because Python's urlencode (Marzban) produces it.
const decodeComponent = (value: string) => decodeURIComponent(value.replace(/\+/g, " "));

function splitUri(uri: string): UriParts {
  const m = /^([a-z0-9]+):\/\/([^@/?#]*)@(\[[0-9a-fA-F:.]+\]|[^:/?#[\]]+):(\d{1,5})\/?(\?[^#]*)?(#.*)?$/.exec(
    uri,
  );
  if (!m) throw new LinkParseError(`not a scheme://userinfo@host:port link: ${uri.slice(0, 40)}`);
  const [, scheme = "", userinfo = "", rawHost = "", port = "", search = "", hash = ""] = m;
  const params = new Map<string, string>();
  for (const pair of search.slice(1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeComponent(eq < 0 ? pair : pair.slice(0, eq));
    if (params.has(key)) throw new LinkParseError(`duplicate parameter ${key}`);
    params.set(key, eq < 0 ? "" : decodeComponent(pair.slice(eq + 1)));
  }
  return {
    scheme,
    userinfo,
    address: rawHost.startsWith("[") ? rawHost.slice(1, -1) : rawHost,
    port: Number(port),
    params,
    fragment: hash ? decodeURIComponent(hash.slice(1)) : "",
  };
}

function emptyLink(protocol: Protocol, name: string, address: string, port: number): ParsedXrayLink {
  return {
    kind: "xray",
    name,
    protocol,
    address,
    port,
    uuid: "",
    password: "",
    method: "",
    flow: "",
    transport: { type: "tcp", path: "", host: "", serviceName: "", headerType: "none", mode: "" },
    security: {
      type: "none",
      sni: "",
      alpn: [],
      fingerprint: "",
      allowInsecure: false,
      publicKey: "",
      shortId: "",
      spiderX: "",
    },
  };
}

/** vless:// and trojan:// share the query vocabulary (type, security, sni, fp, pbk, …). */
function applyStreamParams(link: ParsedXrayLink, q: Map<string, string>): void {
  const get = (key: string) => q.get(key) ?? "";
  const type = (get("type") || "tcp") as TransportType;
  link.transport.type = type === ("raw" as TransportType) ? "tcp" : type;
  link.transport.headerType = get("headerType") === "http" ? "http" : "none";
  link.transport.path = get("path");
  link.transport.host = get("host");
  link.transport.serviceName = get("serviceName");
  link.transport.mode = type === "xhttp" ? get("mode") || "auto" : "";
  link.security.type = (get("security") || "none") as SecurityType;
  link.security.sni = get("sni");
  link.security.fingerprint = get("fp");
  link.security.alpn = get("alpn") ? get("alpn").split(",") : [];
  link.security.allowInsecure = get("allowInsecure") === "1" || get("insecure") === "1";
  link.security.publicKey = get("pbk");
  link.security.shortId = get("sid");
  link.security.spiderX = get("spx");
  link.flow = get("flow");
}

function parseVmess(uri: string): ParsedXrayLink {
  const json = JSON.parse(Buffer.from(uri.slice("vmess://".length), "base64").toString("utf8"));
  if (json.v !== "2" && json.v !== 2) throw new LinkParseError("vmess link is not version 2");
  const str = (key: string) => (json[key] === undefined || json[key] === null ? "" : String(json[key]));
  const link = emptyLink("vmess", str("ps"), str("add"), Number(str("port")));
  link.uuid = str("id");
  const net = (str("net") || "tcp") as TransportType;
  link.transport.type = net;
  if (net === "grpc") link.transport.serviceName = str("path");
  else link.transport.path = str("path");
  if (net !== "grpc") link.transport.host = str("host");
  if (net === "tcp") link.transport.headerType = str("type") === "http" ? "http" : "none";
  if (net === "xhttp") link.transport.mode = str("type") || "auto";
  link.security.type = (str("tls") || "none") as SecurityType;
  link.security.sni = str("sni");
  link.security.alpn = str("alpn") ? str("alpn").split(",") : [];
  link.security.fingerprint = str("fp");
  link.security.allowInsecure = str("allowInsecure") === "1" || str("insecure") === "1";
  return link;
}

function parseShadowsocks(parts: UriParts): ParsedXrayLink {
  // SIP002: userinfo is either websafe base64 of "method:password" or percent-encoded plain text.
  const plain = parts.userinfo.includes(":")
    ? parts.userinfo
    : Buffer.from(parts.userinfo.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8");
  const colon = plain.indexOf(":");
  if (colon < 0) throw new LinkParseError("ss userinfo lacks method:password");
  const link = emptyLink("shadowsocks", parts.fragment, parts.address, parts.port);
  const decode = parts.userinfo.includes(":") ? decodeURIComponent : (s: string) => s;
  link.method = decode(plain.slice(0, colon));
  link.password = decode(plain.slice(colon + 1));
  return link;
}

function parseWireguard(parts: UriParts): ParsedWireguardLink {
  const mtu = parts.params.get("mtu");
  const address = parts.params.get("address");
  return {
    kind: "wireguard",
    name: parts.fragment,
    address: parts.address,
    port: parts.port,
    privateKey: decodeURIComponent(parts.userinfo),
    serverPublicKey: parts.params.get("publickey") ?? "",
    presharedKey: parts.params.get("presharedkey") ?? "",
    addresses: address ? address.split(",") : [],
    mtu: mtu ? Number(mtu) : null,
  };
}

export function parseShareLink(uri: string): ParsedLink {
  if (uri.startsWith("vmess://")) return parseVmess(uri);
  const parts = splitUri(uri);
  switch (parts.scheme) {
    case "vless": {
      const link = emptyLink("vless", parts.fragment, parts.address, parts.port);
      link.uuid = decodeURIComponent(parts.userinfo);
      applyStreamParams(link, parts.params);
      return link;
    }
    case "trojan": {
      const link = emptyLink("trojan", parts.fragment, parts.address, parts.port);
      link.password = decodeURIComponent(parts.userinfo);
      applyStreamParams(link, parts.params);
      return link;
    }
    case "ss":
      return parseShadowsocks(parts);
    case "wireguard":
      return parseWireguard(parts);
    default:
      throw new LinkParseError(`unknown scheme ${parts.scheme}`);
  }
}

/** Decodes a base64 subscription body (padded or not) into its links. */
export function parseSubscriptionBody(body: string): string[] {
  const text = Buffer.from(body.trim(), "base64").toString("utf8");
  return text.split("\n").filter((line) => line.length > 0);
}
