// A small typed environment reader. Every process declares its variables once, with their parsers,
// and reads `process.env` only through `loadEnv`, so a bad or missing value stops start-up with a
// message that names the variable.

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
  }
}

export interface EnvVar<T> {
  readonly description: string;
  readonly defaultText: string | undefined;
  parse(raw: string | undefined, name: string): T;
}

type Problem = { message: string };
const fail = (message: string): never => {
  throw { message } satisfies Problem;
};

function make<T>(
  description: string,
  defaultValue: T | undefined,
  parseValue: (raw: string, name: string) => T,
  defaultText?: string,
): EnvVar<T> {
  return {
    description,
    defaultText: defaultText ?? (defaultValue === undefined ? undefined : String(defaultValue)),
    parse(raw, name) {
      if (raw === undefined || raw === "") {
        if (defaultValue === undefined) return fail(`${name} is required (${description})`);
        return defaultValue;
      }
      return parseValue(raw.trim(), name);
    },
  };
}

export const env = {
  string(description: string, opts: { default?: string; minLength?: number } = {}): EnvVar<string> {
    return make(description, opts.default, (raw, name) => {
      if (opts.minLength !== undefined && raw.length < opts.minLength) {
        fail(`${name} must be at least ${opts.minLength} characters`);
      }
      return raw;
    });
  },
  optionalString(description: string): EnvVar<string | undefined> {
    return { description, defaultText: undefined, parse: (raw) => (raw ? raw : undefined) };
  },
  int(description: string, opts: { default?: number; min?: number; max?: number } = {}): EnvVar<number> {
    return make(description, opts.default, (raw, name) => {
      if (!/^-?\d+$/.test(raw)) fail(`${name} must be an integer (got "${raw}")`);
      const n = Number(raw);
      if (opts.min !== undefined && n < opts.min) fail(`${name} must be >= ${opts.min} (got ${n})`);
      if (opts.max !== undefined && n > opts.max) fail(`${name} must be <= ${opts.max} (got ${n})`);
      return n;
    });
  },
  bool(description: string, opts: { default?: boolean } = {}): EnvVar<boolean> {
    return make(description, opts.default, (raw, name) => {
      const v = raw.toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      return fail(`${name} must be true or false (got "${raw}")`);
    });
  },
  oneOf<const T extends string>(
    description: string,
    values: readonly T[],
    opts: { default?: T } = {},
  ): EnvVar<T> {
    return make(description, opts.default, (raw, name) => {
      if (!(values as readonly string[]).includes(raw)) {
        fail(`${name} must be one of ${values.join(", ")} (got "${raw}")`);
      }
      return raw as T;
    });
  },
  url(
    description: string,
    protocols: string[],
    opts: { optional?: boolean } = {},
  ): EnvVar<string | undefined> {
    return {
      description,
      defaultText: undefined,
      parse(raw, name) {
        if (!raw) return opts.optional ? undefined : fail(`${name} is required (${description})`);
        let u: URL;
        try {
          u = new URL(raw);
        } catch {
          return fail(`${name} is not a valid URL`);
        }
        if (!protocols.includes(u.protocol)) {
          fail(`${name} must use ${protocols.join(" or ")} (got "${u.protocol}")`);
        }
        return raw;
      },
    };
  },
  list(description: string, opts: { default?: string[] } = {}): EnvVar<string[]> {
    return make(
      description,
      opts.default,
      (raw) =>
        raw
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean),
      opts.default?.join(","),
    );
  },
};

export type EnvSchema = Record<string, EnvVar<unknown>>;
export type EnvOf<S extends EnvSchema> = { [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never };

/** Parses every variable of the schema, collecting all problems before failing. */
export function loadEnv<S extends EnvSchema>(
  schema: S,
  source: Record<string, string | undefined> = process.env,
): EnvOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(schema)) {
    try {
      out[name] = spec.parse(source[name], name);
    } catch (e) {
      problems.push(typeof e === "object" && e && "message" in e ? String(e.message) : String(e));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as EnvOf<S>;
}

/** Renders a schema as `.env.example` lines, so the documentation cannot drift from the code. */
export function describeEnv(schema: EnvSchema): string {
  return Object.entries(schema)
    .map(
      ([name, spec]) =>
        `# ${spec.description}\n${spec.defaultText === undefined ? "# " : ""}${name}=${spec.defaultText ?? ""}`,
    )
    .join("\n\n");
}
