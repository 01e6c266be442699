// PostgreSQL error classification. drizzle wraps driver errors, so the SQLSTATE may sit on `cause`.

function sqlState(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === "object"; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export const isUniqueViolation = (e: unknown) => sqlState(e) === "23505";
export const isForeignKeyViolation = (e: unknown) => sqlState(e) === "23503";
export const isSerializationFailure = (e: unknown) => ["40001", "40P01"].includes(sqlState(e) ?? "");
export const isInsufficientPrivilege = (e: unknown) => sqlState(e) === "42501";
export { sqlState };
