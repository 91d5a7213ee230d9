// Waiting until a request reached a worker, rather than sleeping on the hope that it did.
import type { StatusReport } from '../../src/control/protocol.js';
import { runCli } from './tsgunicorn.js';
import { until } from './wait.js';

/** Until a worker's heartbeat, as `tsgunicorn status` reports it, shows a request in flight. */
export const requestInFlight = (controlSocket: string): Promise<true> =>
  until('a request in flight', async () => {
    const { code, stdout } = await runCli(['status', '--socket', controlSocket, '--json']);
    return code === 0 && (JSON.parse(stdout) as StatusReport).workers.some((w) => w.inFlight > 0) ? true : undefined;
  });
