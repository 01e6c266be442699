// The panel's internal PKI: the CA, node and collector certificates, the mTLS layer of the
// collector, and encryption at rest for the secrets it keeps.
export * from "./ca";
export * from "./cert-info";
export * from "./csr";
export * from "./mtls";
export {
  isNodeId,
  nodeDnsName,
  nodeUriPrefix,
  normalizeSerialHex,
  PkiError,
  type PkiErrorCode,
} from "./pki-common";
