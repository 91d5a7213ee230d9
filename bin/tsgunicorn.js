#!/usr/bin/env -S node --no-opt --no-maglev --no-sparkplug
// No optimizing or baseline compiler keeps the master, which serves no requests,
// small (the workers are started without these flags); --lite-mode saves no more
// and turns off WebAssembly, which stripping TypeScript types (hooks.ts,
// --check-config of a .ts app) needs.
import module from 'node:module';

// First of all: a SIGUSR1 without a listener starts Node's inspector, which any
// local user could connect to and run code as the service user. The master's
// own listener reopens the log files (--disable-sigusr1 would drop the signal
// before any listener sees it).
process.on('SIGUSR1', () => {});
// V8's compile cache next: the CLI's imports load after it.
module.enableCompileCache?.();
await import('../dist/js/cli.js');
