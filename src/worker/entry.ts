// The worker process's entry: turns on V8's compile cache before anything else
// loads (imports are hoisted, so the worker proper is imported afterwards), which
// makes replacement workers ready sooner.
import module from 'node:module';

module.enableCompileCache?.();
await import('./worker.js');
