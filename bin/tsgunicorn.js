#!/usr/bin/env -S node --lite-mode
// V8's compile cache first: the CLI's imports load after it. --lite-mode (no
// optimizing compiler) keeps the master, which serves no requests, small; the
// workers are started without it.
import module from 'node:module';

module.enableCompileCache?.();
await import('../dist/js/cli.js');
