// The metrics a worker keeps in its own process. Requests only touch
// preallocated counters; the master pulls a snapshot over IPC when it needs one.
// No prom-client here: loading it would add to every worker's boot, and its
// labelled inc/observe build label-key strings on each request. The snapshot is
// written in the JSON form of prom-client's getMetricsAsJSON(), which the
// master's aggregator sums.
import { family, single, type SnapshotMetric } from './family.js';
import { createLoopLag } from './loop-lag.js';
import { processMetrics } from './process-metrics.js';

export interface MetricsSnapshot {
  /** Increases with every snapshot of one worker, so the master can drop a late, older reply. */
  seq: number;
  metrics: SnapshotMetric[];
}

export interface WorkerMetrics {
  requestStarted(): void;
  requestFinished(method: string, status: number, seconds: number): void;
  /** The worker reached max_connections and stopped accepting. */
  acceptPaused(): void;
  snapshot(): Promise<MetricsSnapshot>;
}

export const REQUESTS_TOTAL = 'http_requests_total';
export const REQUEST_DURATION = 'http_request_duration_seconds';
const IN_FLIGHT = 'http_requests_in_flight';
const ACCEPT_PAUSES = 'tsgunicorn_max_connections_pauses_total';
const WORKER_CPU = 'tsgunicorn_worker_cpu_seconds_total';
const WORKER_RSS = 'tsgunicorn_worker_resident_memory_bytes';
const WORKER_LAG = 'tsgunicorn_worker_event_loop_lag_seconds';

/** Series about one worker process: the master keeps them apart with a `worker` label instead of summing them. */
export const PER_WORKER_METRICS: ReadonlySet<string> = new Set([WORKER_CPU, WORKER_RSS, WORKER_LAG]);

/** 0.2 s is the response-time objective the alerting rules check. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10];

// Any other method a client sends shares one label value, so clients cannot grow the series count.
const METHOD_LABELS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'other'] as const;
const OTHER_METHOD = METHOD_LABELS.length - 1;

// Methods are case-sensitive (RFC 9110 section 9.1): "get" is not GET.
function methodIndex(method: string): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'POST':
      return 2;
    case 'PUT':
      return 3;
    case 'DELETE':
      return 4;
    case 'PATCH':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return OTHER_METHOD;
  }
}

export function createWorkerMetrics(): WorkerMetrics {
  // Request counts by (method, status): a status is given its series slot the
  // first time it is seen with that method, so the request path only indexes.
  const slotOf = METHOD_LABELS.map(() => new Map<number, number>());
  const seriesMethod: number[] = [];
  const seriesStatus: number[] = [];
  let counts = new Float64Array(16);

  // Non-cumulative counts per bucket, the last one for values above every bound.
  const bucketCounts = new Float64Array(DURATION_BUCKETS.length + 1);
  // Sum and count live in a typed array: a double (or a count past 2^31) in a
  // closure variable is boxed anew on every write.
  const durationTotals = new Float64Array(2);
  let inFlight = 0;
  let acceptPauses = 0;

  const lag = createLoopLag(() => inFlight);

  function newSeries(method: number, status: number): number {
    const slot = seriesMethod.length;
    seriesMethod.push(method);
    seriesStatus.push(status);
    slotOf[method]!.set(status, slot);
    if (slot === counts.length) {
      const grown = new Float64Array(counts.length * 2);
      grown.set(counts);
      counts = grown;
    }
    return slot;
  }

  // The series of the previous request: under load most requests repeat it, and then need no lookup. The
  // method is compared as given, so a request of another case ("get") never reuses GET's series.
  let lastMethod = '';
  let lastStatus = -1;
  let lastSlot = 0;

  let seq = 0;
  return {
    requestStarted() {
      inFlight++;
      lag.requestStarted();
    },
    requestFinished(method, status, seconds) {
      inFlight--;
      if (status !== lastStatus || method !== lastMethod) {
        const m = methodIndex(method);
        lastSlot = slotOf[m]!.get(status) ?? newSeries(m, status);
        lastMethod = method;
        lastStatus = status;
      }
      counts[lastSlot]!++;
      // A value on a bound belongs to that bucket (le is "less than or equal").
      let b = 0;
      while (b < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[b]!) b++;
      bucketCounts[b]!++;
      durationTotals[0]! += seconds;
      durationTotals[1]!++;
    },
    acceptPaused() {
      acceptPauses++;
    },
    snapshot() {
      const requests = seriesMethod.map((m, slot) => ({
        value: counts[slot]!,
        labels: { method: METHOD_LABELS[m]!, status: String(seriesStatus[slot]) },
      }));
      let cumulative = 0;
      const duration: SnapshotMetric['values'] = [...DURATION_BUCKETS, '+Inf' as const].map((le, b) => ({
        value: (cumulative += bucketCounts[b]!),
        metricName: `${REQUEST_DURATION}_bucket`,
        exemplar: null,
        labels: { le },
      }));
      duration.push(
        { value: durationTotals[0]!, metricName: `${REQUEST_DURATION}_sum`, labels: {} },
        { value: durationTotals[1]!, metricName: `${REQUEST_DURATION}_count`, labels: {} },
      );
      const lagSeconds = lag.takeP99Seconds();
      return Promise.resolve({
        seq: ++seq,
        metrics: [
          family(REQUESTS_TOTAL, 'HTTP requests answered, by method and status code.', 'counter', requests),
          // prom-client's histogram puts its name first.
          {
            name: REQUEST_DURATION,
            help: 'Time from receiving a request to finishing its response, in seconds.',
            type: 'histogram',
            values: duration,
            aggregator: 'sum',
          },
          family(IN_FLIGHT, 'HTTP requests being handled now.', 'gauge', single(inFlight)),
          family(
            ACCEPT_PAUSES,
            'Times a worker held max_connections connections and stopped accepting (new ones wait for other workers or in the backlog).',
            'counter',
            single(acceptPauses),
          ),
          ...processMetrics({ cpu: WORKER_CPU, memory: WORKER_RSS }),
          family(
            WORKER_LAG,
            '99th percentile of event-loop delay while serving since the previous snapshot, in seconds (0 when idle throughout).',
            'gauge',
            single(lagSeconds),
          ),
        ],
      });
    },
  };
}
