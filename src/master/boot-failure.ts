// Why a worker did not boot, in the words of the log, STATUS= and reload clients.
import { EXIT } from '../ipc.js';
import { loadErrorMessage, withSyntaxLocation } from '../syntax-location.js';
import type { WorkerProcess } from './worker-process.js';

/** Why a generation did not boot: one line for logs, STATUS= and clients, and the full text (a stack) when there is one. */
export interface BootFailure {
  /** The master's exit code when the first generation fails. */
  code: number;
  reason: string;
  detail: string | null;
}

/** The log entry for a worker that exited before it was ready; `app` locates a syntax error that names no file. */
export function describeBootFailure(worker: WorkerProcess, app: string): string {
  if (worker.appError) return `Failed to load the app:\n${withSyntaxLocation(worker.appError, app)}`;
  if (worker.exitCode === EXIT.APP_LOAD_ERROR) return `Failed to load the app: the worker (pid:${worker.pid}) exited while importing it`;
  return `Worker (pid:${worker.pid}) failed to boot (exit code ${worker.exitCode ?? 'by signal'})`;
}

export function bootFailure(worker: WorkerProcess, app: string): BootFailure {
  const code = worker.exitCode === EXIT.APP_LOAD_ERROR ? EXIT.APP_LOAD_ERROR : EXIT.WORKER_BOOT_ERROR;
  if (!worker.appError) return { code, reason: describeBootFailure(worker, app).replace(/^Failed/, 'failed'), detail: null };
  const located = withSyntaxLocation(worker.appError, app);
  const where = located === worker.appError ? '' : ` at ${located.split('\n')[0]}`;
  return { code, reason: `the app failed to load: ${loadErrorMessage(located)}${where}`, detail: located };
}
