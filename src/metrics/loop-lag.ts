// Event-loop delay, sampled as monitorEventLoopDelay samples it (the time between
// the ticks of a 10 ms timer, which a busy or blocked loop stretches) but only
// while the worker serves. A timer ticking through idle time wakes the worker
// about 180 times a second (each tick, and the early return of the poll before
// it), 3 ms of CPU a second: more than an idle worker spends on everything else,
// and at light load it is most of what a request costs. An idle loop has no
// delay to report.
import { createHistogram } from 'node:perf_hooks';

const RESOLUTION_MS = 10;
/** Ticks without a request, and none in flight, before the timer stops: 100 ms. */
const IDLE_TICKS = 10;

export interface LoopLag {
  /** A request started: sampling runs (again) from now on. */
  requestStarted(): void;
  /** The 99th percentile of the delays sampled since the previous call, in seconds; 0 when none were. */
  takeP99Seconds(): number;
}

export function createLoopLag(inFlight: () => number): LoopLag {
  // Nanoseconds, as monitorEventLoopDelay records them.
  const delays = createHistogram();
  let timer: NodeJS.Timeout | null = null;
  let lastTick = 0;
  let started = false;
  let idleTicks = 0;

  function tick(): void {
    const now = performance.now();
    delays.record(Math.max(1, Math.round((now - lastTick) * 1e6)));
    lastTick = now;
    if (started || inFlight() > 0) {
      started = false;
      idleTicks = 0;
    } else if (++idleTicks === IDLE_TICKS) {
      clearInterval(timer!);
      timer = null;
    }
  }

  return {
    requestStarted() {
      started = true;
      if (timer !== null) return;
      idleTicks = 0;
      lastTick = performance.now();
      timer = setInterval(tick, RESOLUTION_MS).unref();
    },
    takeP99Seconds() {
      const p99 = delays.count > 0 ? delays.percentile(99) / 1e9 : 0;
      delays.reset();
      return p99;
    },
  };
}
