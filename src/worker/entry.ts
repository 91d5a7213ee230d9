// The worker process's entry: turns on V8's compile cache before anything else
// loads (imports are hoisted, so the worker proper is imported afterwards), which
// makes replacement workers ready sooner.
import module from 'node:module';
import { dieWithMaster } from './master-death.js';

dieWithMaster();

// `systemctl kill` signals every process of the unit: a TTIN or TTOU meant for
// the master would stop a worker (their default action) and a USR2 would end it.
for (const signal of ['SIGTTIN', 'SIGTTOU', 'SIGUSR2'] as const) process.on(signal, () => {});
module.enableCompileCache?.();
await import('./worker.js');
