// The figures table of `npm run bench -- agent`: rows collected while the phases run, printed at the
// end as Markdown (so it can go into docs/benchmarks.md as it is), followed by the notes.

export interface Row {
  section: string;
  item: string;
  value: string;
  target?: string;
  /** true = meets the target, false = misses it, undefined = no target. */
  ok?: boolean;
}

export class Report {
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  /** Assertions that failed (wrong results, not missed targets): the run exits non-zero. */
  readonly failures: string[] = [];

  add(row: Row): void {
    this.rows.push(row);
  }

  note(text: string): void {
    this.notes.push(text);
  }

  fail(text: string): void {
    this.failures.push(text);
  }

  render(header: string[]): string {
    const out: string[] = [...header, ""];
    out.push("| section | measurement | result | target | |", "|---|---|---|---|---|");
    for (const r of this.rows) {
      const verdict = r.ok === undefined ? "" : r.ok ? "met" : "**MISSED**";
      out.push(`| ${r.section} | ${r.item} | ${r.value} | ${r.target ?? ""} | ${verdict} |`);
    }
    if (this.notes.length > 0) {
      out.push("", "Notes:");
      for (const n of this.notes) out.push(`- ${n}`);
    }
    if (this.failures.length > 0) {
      out.push("", "FAILED CHECKS:");
      for (const f of this.failures) out.push(`- ${f}`);
    }
    return `${out.join("\n")}\n`;
  }
}

export const seconds = (s: number): string =>
  s >= 100
    ? `${s.toFixed(0)} s`
    : s >= 1
      ? `${s.toFixed(2)} s`
      : `${(s * 1000).toFixed(s < 0.01 ? 2 : 0)} ms`;

export const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value.toFixed(1));

/** Decimal megabytes (10^6 bytes): the stricter reading of a "150 MB" target. */
export const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

export const count = (n: number): string => n.toLocaleString("en-US");

export const rate = (n: number, s: number): string => (s > 0 ? `${(n / s / 1000).toFixed(2)}k/s` : "–");
