// One metric family in the JSON form of prom-client's getMetricsAsJSON(): what a
// worker's snapshot carries over IPC, what the aggregator sums, and what
// exposition.ts renders. Built without prom-client, which workers never load.

/** One metric family as prom-client's getMetricsAsJSON() gives it: plain JSON, fit for IPC. */
export interface SnapshotMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: Array<{ value: number; labels: Record<string, string | number>; metricName?: string }>;
}

// The shape prom-client gives a family; key order too, so snapshots read the same.
export function family(name: string, help: string, type: string, values: SnapshotMetric['values']): SnapshotMetric {
  return { help, name, type, values, aggregator: 'sum' };
}

/** The values of a family with one unlabelled series. */
export const single = (value: number): SnapshotMetric['values'] => [{ value, labels: {} }];
