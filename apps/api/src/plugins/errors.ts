import { AppError, isAppError } from "@vpnpanel/common";
import type { FastifyError, FastifyInstance } from "fastify";

// One error shape for every failure: { error: { code, message, request_id } }. Validation errors name
// the field; nothing internal (stack, SQL, driver text) ever reaches the client.

function fieldOf(v: { instancePath?: string; params?: Record<string, unknown> }): string {
  const base = (v.instancePath ?? "").replace(/^\//, "").replace(/\//g, ".");
  const extra = v.params?.missingProperty ?? v.params?.additionalProperty;
  return [base, extra].filter((s) => s !== undefined && s !== "").join(".") || "(root)";
}

export function registerErrorHandling(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError | AppError | Error, req, reply) => {
    const requestId = req.id;
    if (isAppError(err)) {
      if (err.code === "rate_limited" && typeof err.details?.retryAfterSeconds === "number") {
        reply.header("retry-after", String(err.details.retryAfterSeconds));
      }
      const field = typeof err.details?.field === "string" ? err.details.field : undefined;
      return reply.status(err.status).send({
        error: { code: err.code, message: err.message, request_id: requestId, ...(field ? { field } : {}) },
      });
    }
    const fe = err as FastifyError;
    if (fe.validation && fe.validation.length > 0) {
      const first = fe.validation[0]!;
      const part = fe.validationContext ?? "body";
      const field = fieldOf(first as never);
      const message = `${part}.${field}: ${first.message ?? "is invalid"}`;
      return reply.status(400).send({
        error: { code: "validation_failed", message, request_id: requestId, field },
      });
    }
    if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
      // Fastify's own client errors (bad JSON, body too large, unsupported media type).
      const code =
        fe.statusCode === 413 ? "payload_too_large" : fe.statusCode === 404 ? "not_found" : "bad_request";
      return reply
        .status(fe.statusCode)
        .send({ error: { code, message: fe.message, request_id: requestId } });
    }
    req.log.error({ err }, "unhandled error");
    return reply
      .status(500)
      .send({ error: { code: "internal", message: "internal error", request_id: requestId } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({
      error: {
        code: "not_found",
        message: `route ${req.method} ${req.url.split("?")[0]} not found`,
        request_id: req.id,
      },
    }),
  );
}

export const unavailable = (what: string) => new AppError("unavailable", `${what} is unavailable`);
