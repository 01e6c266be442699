// TLS for the node protocol (ARCHITECTURE.md §5). The TLS handshake enforces the chain: with
// client-certificate checking on, Node rejects a certificate from another CA, or one that is
// expired or not yet valid, before any RPC runs. TLS knows nothing about revocation or about
// which node a peer claims to be. authenticatePeer adds both checks, and repeats the validity
// check with an injected clock. A Session stream can outlive the certificate it started
// with, and a misconfigured port can skip client-certificate checking.
//
// grpc-js sets credentials per listening port, but registers services per server. Run Enrollment
// and NodeControl on separate grpc.Server instances. Otherwise NodeControl is also reachable
// on the TLS-only enrollment port, where authenticatePeer is then the only guard.
import { type ChannelCredentials, credentials, ServerCredentials, status } from "@grpc/grpc-js";
import { certificateInfo, nodeIdFromCert } from "./cert-info";
import { PkiError } from "./pki-common";

/** The certificate chain and PKCS#8 key that this side presents. */
export interface TlsIdentity {
  certPem: string;
  keyPem: string;
}

/** Enrollment: server-authenticated TLS only. The new node has no certificate yet; the token authenticates it. */
export function enrollmentServerCredentials(identity: TlsIdentity): ServerCredentials {
  return ServerCredentials.createSsl(null, [keyCertPair(identity)], false);
}

/** NodeControl: mutual TLS. The client must present a certificate that chains to `caPem`. */
export function nodeControlServerCredentials(params: TlsIdentity & { caPem: string }): ServerCredentials {
  return ServerCredentials.createSsl(Buffer.from(params.caPem), [keyCertPair(params)], true);
}

/** Agent → NodeControl. The agent trusts only the panel's CA, not the system store. */
export function clientCredentials(params: TlsIdentity & { caPem: string }): ChannelCredentials {
  return credentials.createSsl(
    Buffer.from(params.caPem),
    Buffer.from(params.keyPem),
    Buffer.from(params.certPem),
  );
}

/**
 * Agent → Enrollment. The agent gets the CA certificate out of band, with its enrollment token.
 * It must not fall back to the system store. Otherwise any publicly trusted certificate for the
 * collector's name could collect the token.
 */
export function enrollmentCredentials(params: { caPem: string }): ChannelCredentials {
  return credentials.createSsl(Buffer.from(params.caPem));
}

function keyCertPair(identity: TlsIdentity) {
  return { private_key: Buffer.from(identity.keyPem), cert_chain: Buffer.from(identity.certPem) };
}

export type PeerAuthReason =
  | "no_certificate"
  | "invalid_certificate"
  | "not_yet_valid"
  | "expired"
  | "revoked"
  | "node_mismatch";

/**
 * Has the shape of a grpc-js status (`code`, `details`). A handler passes it as is to a unary
 * callback, or emits it as the "error" of a stream, and the client gets that status.
 */
export class PeerAuthError extends Error {
  readonly code: status;
  readonly details: string;

  constructor(
    readonly reason: PeerAuthReason,
    message: string,
  ) {
    super(message);
    this.name = "PeerAuthError";
    this.code = reason === "node_mismatch" ? status.PERMISSION_DENIED : status.UNAUTHENTICATED;
    this.details = message;
  }
}

export interface PeerIdentity {
  nodeId: string;
  serialHex: string;
  notAfter: Date;
  fingerprintSha256: string;
}

/** The parts of a grpc-js server call used here; every server call type has them. */
export interface PeerCall {
  getAuthContext(): { sslPeerCertificate?: { raw?: Buffer } } | null;
}

export async function authenticatePeer(
  call: PeerCall,
  options: {
    /** Gets the normalized serial (see certificateInfo). */
    isRevoked: (serialHex: string) => boolean | Promise<boolean>;
    /** The node id from Hello; omit it on calls that claim none (RenewCertificate). */
    claimedNodeId?: string;
    now?: Date;
  },
): Promise<PeerIdentity> {
  // grpc-js returns no certificate unless the TLS socket verified it against the CA.
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  if (!raw || raw.length === 0) throw new PeerAuthError("no_certificate", "a client certificate is required");

  let nodeId: string;
  let info: ReturnType<typeof certificateInfo>;
  try {
    info = certificateInfo(raw);
    nodeId = nodeIdFromCert(raw);
  } catch (error) {
    if (error instanceof PkiError)
      throw new PeerAuthError("invalid_certificate", "client certificate names no node");
    throw error;
  }

  const now = (options.now ?? new Date()).getTime();
  if (now < info.notBefore.getTime())
    throw new PeerAuthError("not_yet_valid", "client certificate is not yet valid");
  if (now > info.notAfter.getTime()) throw new PeerAuthError("expired", "client certificate has expired");
  if (await options.isRevoked(info.serialHex)) {
    throw new PeerAuthError("revoked", "client certificate has been revoked");
  }
  if (options.claimedNodeId !== undefined && options.claimedNodeId !== nodeId) {
    // The message tells the caller what it claimed, and never the certificate's id. It
    // already knows its own certificate.
    throw new PeerAuthError("node_mismatch", "certificate does not belong to the claimed node");
  }
  return {
    nodeId,
    serialHex: info.serialHex,
    notAfter: info.notAfter,
    fingerprintSha256: info.fingerprintSha256,
  };
}
