// The master's side of the control socket (src/control/): what each command
// reads, or records for the master's reconcile step. A missing or busy socket
// costs the operator's commands, never the server.
import type { Logger } from '../logging/logger.js';
import { ControlError, isScaleCount, SCALE_FORM, type ReloadOutcome, type StatusReport } from '../control/protocol.js';
import type { ControlHandlers, ControlServer } from '../control/server.js';
import type { Reporting } from './reporting.js';
import type { WorkerProcess } from './worker-process.js';

export interface ControlHost {
  logger: Logger;
  /** The report's fields the master knows itself (the rest comes from reporting and the workers). */
  status(): Omit<StatusReport, 'requests' | 'restarts' | 'workers'>;
  reporting(): Reporting | null;
  workers(): Iterable<WorkerProcess>;
  stopping(): boolean;
  /** Records a reload; the promise settles when it succeeded or failed. */
  reload(): Promise<ReloadOutcome>;
  scale(count: number): void;
  kill(worker: WorkerProcess): void;
  reopenLogs(): void;
}

export async function startControl(path: string, group: string | null, host: ControlHost): Promise<ControlServer | null> {
  const { logger } = host;
  try {
    const { startControlServer } = await import('../control/server.js');
    const server = await startControlServer(path, group, handlers(host));
    logger.info(`Control socket at: ${path}`);
    return server;
  } catch (err) {
    logger.warning(`control socket ${path}: ${(err as Error).message}; tsgunicorn status, reload and scale cannot reach this server`);
    return null;
  }
}

function handlers(host: ControlHost): ControlHandlers {
  const { logger } = host;
  const refuseWhileStopping = () => {
    if (host.stopping()) throw new ControlError('the server is stopping');
  };
  return {
    status: () => status(host),
    reload: async ({ wait }) => {
      refuseWhileStopping();
      logger.info('Reload requested (control socket)');
      const outcome = host.reload();
      if (!wait) return { started: true };
      const result = await outcome;
      if (!result.ok) throw new ControlError(result.reason);
      return result;
    },
    scale: ({ workers }) => {
      refuseWhileStopping();
      // parseRequest checked it already; the bound is the master's to keep, whoever calls.
      if (!isScaleCount(workers)) throw new ControlError(`scale: workers must be ${SCALE_FORM}`);
      logger.info(`Scaling to ${workers} worker${workers === 1 ? '' : 's'} (control socket)`);
      host.scale(workers);
      return { workers };
    },
    'kill-worker': ({ pid }) => {
      const live = [...host.workers()].filter((w) => w.state !== 'exited');
      const worker = live.find((w) => w.pid === pid);
      if (!worker) throw new ControlError(`no worker with pid ${pid} (workers: ${live.map((w) => w.pid).join(', ')})`);
      logger.warning(`Worker (pid:${pid}) killed on request (kill-worker)`);
      host.kill(worker);
      return { killed: pid };
    },
    'reopen-logs': () => {
      logger.info('Reopening log files (control socket)');
      host.reopenLogs();
      return {};
    },
  };
}

async function status(host: ControlHost): Promise<StatusReport> {
  const reporting = host.reporting();
  if (!reporting) throw new ControlError('the server is starting: try again in a moment');
  const facts = await reporting.controlFacts();
  const now = Date.now();
  const { window } = facts;
  const measured = window.windowSec !== null;
  return {
    ...host.status(),
    requests: {
      total: window.requests,
      windowSec: window.windowSec,
      ratePerSec: measured ? window.ratePerSec : null,
      p50Ms: window.p50Ms ?? null,
      p99Ms: window.p99Ms ?? null,
    },
    restarts: facts.restarts,
    workers: [...host.workers()].filter((w) => w.state !== 'exited').map((w) => w.report(now, facts.requestsOf(w.pid))),
  };
}
