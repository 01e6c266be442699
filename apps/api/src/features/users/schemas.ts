import { type Static, type TSchema, Type } from "typebox";
import { Nullable } from "../../schemas";

// Request/response pieces shared by the plans, users, subscription and webhook routes.

/**
 * `T | null` in a request body, as a JSON-Schema type array. The API validates with type coercion, and
 * an anyOf would let `null` be coerced into the first branch (`0` for a quota: unlimited becoming a
 * zero quota); with a type array, coercion happens only when neither type matches.
 */
export function OrNull<T extends TSchema>(schema: T) {
  const { type, ...rest } = schema as unknown as { type: string } & Record<string, unknown>;
  return Type.Unsafe<Static<T> | null>({ ...rest, type: [type, "null"] });
}

/** Routes whose body may be omitted: an absent body validates as `{}`. */
export const optionalBody = {
  preValidation: async (req: { body: unknown }) => {
    if (req.body === undefined || req.body === null) req.body = {};
  },
};

export const Engine = Type.Union([Type.Literal("xray"), Type.Literal("wireguard")]);
export const Engines = Type.Array(Engine, { minItems: 1, maxItems: 2, uniqueItems: true });
/** Bytes as a JSON integer (exact up to 8 PiB). */
export const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** 1 second to 100 years. */
export const Seconds = Type.Integer({ minimum: 1, maximum: 100 * 366 * 86_400 });
export const UserName = Type.String({ minLength: 1, maxLength: 64 });
export const Note = Type.String({ maxLength: 500 });
export const State = Type.Union(
  ["on_hold", "active", "limited", "expired", "disabled"].map((s) => Type.Literal(s)),
);

const Subscription = Type.Object({
  id: Type.String(),
  plan_id: Nullable(Type.String()),
  state: Type.String(),
  state_reason: Nullable(Type.String()),
  state_changed_at: Type.String(),
  quota_bytes: Nullable(Type.Integer()),
  used_bytes: Type.Integer(),
  upload_bytes: Type.Integer(),
  download_bytes: Type.Integer(),
  lifetime_bytes: Type.Integer(),
  started_at: Nullable(Type.String()),
  expires_at: Nullable(Type.String()),
  duration_seconds: Nullable(Type.Integer()),
  hold_mode: Type.String(),
  hold_deadline: Nullable(Type.String()),
  reset_strategy: Type.String(),
  reset_anchor: Type.String(),
  next_reset_at: Nullable(Type.String()),
  next_plan_id: Nullable(Type.String()),
  engines: Type.Array(Type.String()),
  revision: Type.Integer(),
  last_used_at: Nullable(Type.String()),
  subscription_url: Type.Optional(Nullable(Type.String())),
});

export const User = Type.Object({
  id: Type.String(),
  tenant_id: Type.String(),
  username: Type.String(),
  note: Nullable(Type.String()),
  engines: Nullable(Type.Array(Type.String())),
  created_at: Type.String(),
  updated_at: Type.String(),
  subscription: Subscription,
  credentials: Type.Optional(
    Type.Object({
      xray_uuid: Nullable(Type.String()),
      wg_public_key: Nullable(Type.String()),
      ipv4: Nullable(Type.String()),
      ipv6: Nullable(Type.String()),
      rotated_at: Nullable(Type.String()),
    }),
  ),
});

/** Which subscribers a list or a bulk operation applies to. */
export const filterProps = {
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: "name prefix, any case" })),
  note: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "words in the note" })),
  status: Type.Optional(State),
  plan_id: Type.Optional(Type.String({ pattern: "^pln_[0-9a-z]{26}$", maxLength: 64 })),
};
