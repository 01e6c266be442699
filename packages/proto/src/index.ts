// The node ↔ control-plane contract (proto/vpnpanel/node/v1/node_control.proto).
// `npm run proto` generates everything under ./gen. Edit the .proto, never the output.
export * from "./engine-features";
export * from "./gen/vpnpanel/node/v1/node_control";
