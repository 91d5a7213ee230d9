// How often a worker reports liveness: a quarter of `timeout`, so a blocked worker
// is caught within timeout + one interval, bounded to keep the cost negligible.
export function heartbeatIntervalMs(timeoutSeconds: number): number {
  if (timeoutSeconds <= 0) return 1000;
  return Math.min(1000, Math.max(50, (timeoutSeconds * 1000) / 4));
}
