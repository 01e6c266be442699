import type { NodeRow } from "@vpnpanel/control";
import { type NodeInbound, publicInbounds } from "@vpnpanel/control";
import { Type } from "typebox";
import { Nullable } from "../../schemas";
import { OrNull } from "../users/schemas";

// Request/response schemas of the node routes. Inbound documents keep the renderer's field names
// (@vpnpanel/render InboundDefinition: serviceName, headerType, publicKey, …) because they are stored
// and rendered as they are; validateInbound checks what the shapes here cannot (per-core rules).

const Str = (maxLength: number, minLength = 0) => Type.String({ minLength, maxLength });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });

export const EngineName = Type.Union([Type.Literal("xray"), Type.Literal("wireguard")]);
export const Engines = Type.Array(EngineName, { minItems: 1, maxItems: 2, uniqueItems: true });
export const Tags = Type.Array(Str(64, 1), { maxItems: 32, uniqueItems: true });

const HostOverride = Type.Object(
  {
    address: Str(253, 1),
    port: Type.Optional(Port),
    sni: Type.Optional(Str(253)),
    host: Type.Optional(Str(253)),
    path: Type.Optional(Str(512)),
    remark: Type.Optional(Str(512)),
  },
  { additionalProperties: false },
);

export const Inbound = Type.Object(
  {
    tag: Str(64, 1),
    protocol: Type.Union(["vless", "vmess", "trojan", "shadowsocks"].map((p) => Type.Literal(p))),
    port: Port,
    transport: Type.Object(
      {
        type: Type.Union(["tcp", "ws", "grpc", "httpupgrade", "xhttp"].map((p) => Type.Literal(p))),
        path: Type.Optional(Str(512)),
        host: Type.Optional(Str(253)),
        serviceName: Type.Optional(Str(128)),
        headerType: Type.Optional(Type.Union([Type.Literal("none"), Type.Literal("http")])),
        mode: Type.Optional(Str(32)),
      },
      { additionalProperties: false },
    ),
    security: Type.Object(
      {
        type: Type.Union([Type.Literal("none"), Type.Literal("tls"), Type.Literal("reality")]),
        sni: Type.Optional(Str(253)),
        alpn: Type.Optional(Type.Array(Str(16), { maxItems: 3 })),
        fingerprint: Type.Optional(Str(32)),
        allowInsecure: Type.Optional(Type.Boolean()),
        reality: Type.Optional(
          Type.Object(
            { publicKey: Str(64), shortId: Str(16), spiderX: Type.Optional(Str(256)), serverName: Str(253) },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    flow: Type.Optional(Type.Union([Type.Literal(""), Type.Literal("xtls-rprx-vision")])),
    shadowsocks: Type.Optional(
      Type.Object(
        { method: Str(64, 1), serverKey: Type.Optional(Str(128)) },
        { additionalProperties: false },
      ),
    ),
    hosts: Type.Optional(Type.Array(HostOverride, { maxItems: 32 })),
    server: Type.Optional(
      Type.Object(
        {
          listen: Type.Optional(Str(64)),
          tls: Type.Optional(
            Type.Object(
              { certificateFile: Str(512, 1), keyFile: Str(512, 1) },
              { additionalProperties: false },
            ),
          ),
          reality: Type.Optional(
            Type.Object(
              {
                privateKey: Type.Optional(Str(64)),
                dest: Str(260, 1),
                serverNames: Type.Optional(Type.Array(Str(253), { maxItems: 16 })),
              },
              { additionalProperties: false },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const Wireguard = Type.Object(
  {
    interface: Type.Optional(Str(15, 1)),
    listenPort: Port,
    addresses: Type.Array(Str(64, 1), { minItems: 1, maxItems: 4 }),
    mtu: Type.Optional(Type.Integer({ minimum: 1280, maximum: 9000 })),
    endpointHost: Type.Optional(Str(253, 1)),
    endpointPort: Type.Optional(Port),
    dns: Type.Optional(Type.Array(Str(64, 1), { maxItems: 4 })),
    allowedIps: Type.Optional(Type.Array(Str(64, 1), { maxItems: 32 })),
    persistentKeepalive: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 })),
  },
  { additionalProperties: false },
);

export const nodeProps = {
  name: Str(64, 1),
  address: Str(253, 1),
  tags: Type.Optional(Tags),
  // OrNull, not anyOf: with type coercion `null` must stay "no limit", never become 0.
  capacity: Type.Optional(OrNull(Type.Integer({ minimum: 0, maximum: 10_000_000 }))),
  core: Type.Optional(Type.Union([Type.Literal("xray"), Type.Literal("v2ray")])),
  engines: Type.Optional(Engines),
  inbounds: Type.Optional(Type.Array(Inbound, { maxItems: 64 })),
  wireguard: Type.Optional(OrNull(Wireguard)),
};

export const Node = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  name: Type.String(),
  address: Type.String(),
  tags: Type.Array(Type.String()),
  capacity: Nullable(Type.Integer()),
  core: Type.String(),
  engines: Type.Array(Type.String()),
  inbounds: Type.Unknown(),
  wireguard: Type.Unknown(),
  status: Type.String(),
  api_key_set: Type.Boolean(),
  enrolled_at: Nullable(Type.String()),
  created_at: Type.String(),
  updated_at: Type.String(),
});

export function nodeView(n: NodeRow) {
  return {
    id: n.id,
    tenant_id: n.tenantId,
    name: n.name,
    address: n.address,
    tags: n.tags,
    capacity: n.capacity,
    core: n.core,
    engines: n.engines,
    inbounds: publicInbounds(n.inbounds as unknown as NodeInbound[]),
    wireguard: n.wireguard,
    status: n.status,
    api_key_set: n.apiKeyHash !== null,
    enrolled_at: n.enrolledAt?.toISOString() ?? null,
    created_at: n.createdAt.toISOString(),
    updated_at: n.updatedAt.toISOString(),
  };
}

export const NodeIdParams = Type.Object({
  id: Type.String({ pattern: "^node_[0-9a-z]{26}$", maxLength: 64 }),
});
