import { type Logger, pino } from "pino";

export type { Logger };

// Secrets never reach a log line: these paths are redacted wherever they appear.
const redactPaths = [
  "password",
  "*.password",
  "newPassword",
  "*.newPassword",
  "token",
  "*.token",
  "refreshToken",
  "*.refreshToken",
  "refresh_token",
  "*.refresh_token",
  "privateKey",
  "*.privateKey",
  "private_key",
  "*.private_key",
  "presharedKey",
  "*.presharedKey",
  "req.headers.authorization",
  "req.headers.cookie",
];

export function createLogger(opts: { service: string; level?: string; pretty?: boolean }): Logger {
  return pino({
    level: opts.level ?? "info",
    base: { service: opts.service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: "[redacted]" },
    formatters: { level: (label) => ({ level: label }) },
    ...(opts.pretty ? { transport: { target: "pino-pretty", options: { singleLine: true } } } : {}),
  });
}
