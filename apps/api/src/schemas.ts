import { type TSchema, Type } from "typebox";

// Shared request/response schemas. Every string has a length bound; bodies reject unknown fields.

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      request_id: Type.String(),
      field: Type.Optional(Type.String()),
    }),
  },
  { $id: "Error" },
);

export const errorResponses = {
  400: Type.Ref("Error"),
  401: Type.Ref("Error"),
  403: Type.Ref("Error"),
  404: Type.Ref("Error"),
  409: Type.Ref("Error"),
  429: Type.Ref("Error"),
};

export const Id = (prefix: string) => Type.String({ pattern: `^${prefix}_[0-9a-z]{26}$`, maxLength: 64 });
export const IdParams = (prefix: string) => Type.Object({ id: Id(prefix) });

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })),
  cursor: Type.Optional(Type.String({ maxLength: 512 })),
};

export const TenantQuery = {
  tenant_id: Type.Optional(Id("tnt")),
};

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) });

export const Email = Type.String({ format: "email", minLength: 3, maxLength: 254 });
export const Password = Type.String({ minLength: 1, maxLength: 256 });
export const Timestamp = Type.String({ format: "date-time" });
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** The tenant hint of a collection request: X-Tenant-Id header, else ?tenant_id=. */
export function tenantHint(req: { headers: Record<string, unknown>; query: unknown }): string | undefined {
  const h = req.headers["x-tenant-id"];
  if (typeof h === "string" && h) return h;
  const q = (req.query as { tenant_id?: string } | undefined)?.tenant_id;
  return q || undefined;
}
