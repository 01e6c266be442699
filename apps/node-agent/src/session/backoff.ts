// Reconnect pacing. Exponential with a cap, and "equal jitter": half the delay is fixed, half random,
// so a fleet of agents that lost the same collector does not come back in lockstep, yet no agent
// retries sooner than half the nominal delay.

export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
}

/** `attempt` counts consecutive failures, starting at 1; `random` returns [0, 1). */
export function reconnectDelayMs(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const nominal = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return Math.round(nominal / 2 + random() * (nominal / 2));
}
