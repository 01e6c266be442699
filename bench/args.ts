// Command-line options of the benchmark scripts: `--name value` pairs and bare `--flag`s.

/** The value after `--name`, or undefined when the option is absent. */
export function option(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}
