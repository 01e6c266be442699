import { type ServerUnaryCall, type sendUnaryData, status } from "@grpc/grpc-js";
import { isAppError, type Logger } from "@vpnpanel/common";
import type { ControlPlane } from "@vpnpanel/control";
import { authenticatePeer, PeerAuthError } from "@vpnpanel/pki";
import type {
  EnrollmentServer,
  EnrollRequest,
  EnrollResponse,
  RenewRequest,
  RenewResponse,
} from "@vpnpanel/proto";
import type { CollectorMetrics } from "./metrics";

// Enroll (TLS only, one-time token) and RenewCertificate (mTLS). Enroll is the one unauthenticated
// call the collector takes, so it is rate limited per source address before any work.

const ENROLL_LIMIT_PER_MINUTE = 30;

function toStatus(error: unknown, log: Logger): { code: status; details: string } {
  if (error instanceof PeerAuthError) return { code: error.code, details: error.details };
  if (isAppError(error)) {
    const code =
      error.code === "unauthenticated"
        ? status.UNAUTHENTICATED
        : error.code === "not_found"
          ? status.NOT_FOUND
          : error.code === "bad_request" || error.code === "validation_failed"
            ? status.INVALID_ARGUMENT
            : error.code === "rate_limited"
              ? status.RESOURCE_EXHAUSTED
              : status.FAILED_PRECONDITION;
    return { code, details: error.message };
  }
  log.error({ err: error }, "enrollment call failed");
  return { code: status.INTERNAL, details: "internal error" };
}

const peerAddress = (peer: string) => peer.replace(/^ipv[46]:/, "").replace(/:\d+$/, "");

export function enrollmentHandlers(cp: ControlPlane, metrics: CollectorMetrics): EnrollmentServer {
  const log = cp.log.child({ role: "collector" });
  return {
    enroll(call: ServerUnaryCall<EnrollRequest, EnrollResponse>, callback: sendUnaryData<EnrollResponse>) {
      const r = call.request;
      cp.coord.rateLimiter
        .hit(`enroll:${peerAddress(call.getPeer())}`, ENROLL_LIMIT_PER_MINUTE, 60)
        .then((limit) => {
          if (!limit.allowed) {
            metrics.sessionsRejected.inc({ reason: "enroll_rate_limited" });
            return callback({ code: status.RESOURCE_EXHAUSTED, details: "too many enrollment attempts" });
          }
          return cp.enrollment
            .enroll({ token: r.token, csrPem: r.csrPem, agentVersion: r.agentVersion, hostname: r.hostname })
            .then((issued) => {
              log.info({ node_id: issued.nodeId }, "node enrolled");
              callback(null, issued);
            });
        })
        .catch((error: unknown) => {
          metrics.sessionsRejected.inc({ reason: "enroll_failed" });
          callback(toStatus(error, log));
        });
    },
  };
}

export function renewHandler(cp: ControlPlane, metrics: CollectorMetrics) {
  const log = cp.log.child({ role: "collector" });
  return (call: ServerUnaryCall<RenewRequest, RenewResponse>, callback: sendUnaryData<RenewResponse>) => {
    authenticatePeer(call, { isRevoked: (s) => cp.enrollment.isRevoked(s), now: cp.clock.now() })
      .then((peer) => cp.enrollment.renew(peer.nodeId, call.request.csrPem))
      .then(
        (issued) => callback(null, issued),
        (error: unknown) => {
          if (error instanceof PeerAuthError) metrics.sessionsRejected.inc({ reason: error.reason });
          callback(toStatus(error, log));
        },
      );
  };
}
