// The domain package has no dependencies, so it cannot throw the app's `AppError`. It throws (or
// returns) field-level issues instead, with the same stable code the API uses for bad input, so the
// API maps a `DomainValidationError` to `AppError("validation_failed", …, { issues })` in one place.

/** One problem with one input field; `field` is the name the caller used (e.g. "quota", "ipv4"). */
export interface FieldIssue {
  field: string;
  message: string;
}

/** The outcome of a validator that reports every problem at once instead of stopping at the first. */
export type Validation<T> = { ok: true; value: T } | { ok: false; issues: FieldIssue[] };

export class DomainValidationError extends Error {
  readonly code = "validation_failed" as const;

  constructor(readonly issues: FieldIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join("; "));
    this.name = "DomainValidationError";
  }

  /** The first field at fault, which is what a single-field parser reports. */
  get field(): string {
    return this.issues[0]?.field ?? "";
  }
}

export const isDomainValidationError = (e: unknown): e is DomainValidationError =>
  e instanceof DomainValidationError;

/** Throws for a single bad field; used by parsers whose callers want a value or an exception. */
export function invalid(field: string, message: string): never {
  throw new DomainValidationError([{ field, message }]);
}

/** Turns a `Validation` into its value, or throws every issue at once. */
export function unwrap<T>(result: Validation<T>): T {
  if (result.ok) return result.value;
  throw new DomainValidationError(result.issues);
}
