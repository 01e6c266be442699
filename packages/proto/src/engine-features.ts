// Feature names an agent reports in EngineCapability.features. They are strings on the wire, so
// that an older collector keeps a name it does not know yet. This list is the vocabulary that both
// sides agree on today. Renderers use it to leave out of a node's client links anything the node's
// core cannot serve (ARCHITECTURE.md §6: no REALITY, XTLS flow, gRPC transport or uTLS for v2ray 4.x).
export const ENGINE_FEATURES = [
  "reality",
  "xtls_flow",
  "grpc_transport",
  "utls_fingerprint",
  "multi_user_shadowsocks",
  "shadowsocks_2022",
  // The HandlerService RPCs that only Xray has. Without them, the agent keeps its own list of users.
  "list_inbounds",
  "get_inbound_users",
] as const;

export type EngineFeature = (typeof ENGINE_FEATURES)[number];

const known = new Set<string>(ENGINE_FEATURES);

export function isEngineFeature(name: string): name is EngineFeature {
  return known.has(name);
}
