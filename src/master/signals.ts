// The master's signals, as Gunicorn's arbiter takes them. Each handler only
// records what was asked; the master's reconcile step acts on it.
import type { Logger } from '../logging/logger.js';

export interface SignalRecords {
  reload(): void;
  /** TERM: graceful (a second one: quick); INT, QUIT: quick. */
  stop(quick: boolean): void;
  /** TTIN (+1), TTOU (-1). */
  addWorker(delta: 1 | -1): void;
  reopenLogs(): void;
}

export function installSignals(logger: Logger, records: SignalRecords): void {
  process.on('SIGHUP', () => {
    logger.info('Handling signal: hup');
    records.reload();
  });
  process.on('SIGTERM', () => records.stop(false));
  process.on('SIGINT', () => records.stop(true));
  process.on('SIGQUIT', () => records.stop(true));
  process.on('SIGTTIN', () => records.addWorker(1));
  process.on('SIGTTOU', () => records.addWorker(-1));
  process.on('SIGUSR1', () => {
    logger.info('Handling signal: usr1: reopening log files');
    records.reopenLogs();
  });
  // Gunicorn's USR2 (binary upgrade) has no equivalent: a reload does it. Its default action would end the master.
  process.on('SIGUSR2', () => logger.warning('Handling signal: usr2: not used (to load new code: systemctl reload)'));
}
