/**
 * Seconds to wait before retry `attempt` (1 = the first retry): base·2^(attempt-1), capped. No
 * jitter: deliveries of one endpoint already spread over the events' own times, and a fixed
 * schedule is what the delivery log can show the operator ("next attempt at …").
 */
export function retryDelaySeconds(attempt: number, baseSeconds: number, maxSeconds: number): number {
  if (attempt < 1) return 0;
  const exp = Math.min(attempt - 1, 30);
  return Math.min(maxSeconds, baseSeconds * 2 ** exp);
}
