import { type SQL, sql } from "drizzle-orm";

// Raw SQL rows differ by driver: node-postgres returns int8 as strings, PGlite as numbers, and both
// return timestamptz as text through drizzle's `execute`. These helpers read either form, and write
// parameters with explicit casts so neither driver has to guess a type.

export function toDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v;
  const d = new Date(String(v));
  if (Number.isNaN(d.getTime())) throw new TypeError(`not a timestamp: ${String(v)}`);
  return d;
}

export function toBigInt(v: unknown): bigint | null {
  if (v === null || v === undefined) return null;
  return typeof v === "bigint" ? v : BigInt(String(v));
}

export function toNumber(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  return Number(v);
}

export const tsParam = (d: Date): SQL => sql`${d.toISOString()}::timestamptz`;
export const optTsParam = (d: Date | null): SQL => (d ? tsParam(d) : sql`NULL::timestamptz`);
export const bigParam = (n: bigint | null): SQL =>
  n === null ? sql`NULL::bigint` : sql`${n.toString()}::bigint`;
export const textArray = (values: readonly (string | null)[]): SQL => sql`${sql.param([...values])}::text[]`;

const quoted = (s: string) =>
  s.includes('"') || s.includes("\\") ? `"${s.replace(/["\\]/g, "\\$&")}"` : `"${s}"`;

/**
 * An array as ONE text parameter in PostgreSQL's array-literal syntax, for `${arrayLiteral(xs)}::text::T[]`.
 * For arrays of thousands of elements this is several times cheaper than the driver's per-element
 * escaping, and both drivers pass a text parameter through unchanged. No null elements.
 */
export function arrayLiteral(values: readonly (string | number | bigint | boolean)[]): string {
  if (values.length === 0) return "{}";
  const first = values[0];
  if (typeof first === "string") return `{${(values as readonly string[]).map(quoted).join(",")}}`;
  if (typeof first === "boolean") return `{${values.map((v) => (v ? "t" : "f")).join(",")}}`;
  return `{${values.join(",")}}`;
}
