#!/usr/bin/env node
// V8's compile cache first: the CLI's imports load after it.
import module from 'node:module';

module.enableCompileCache?.();
await import('../dist/js/cli.js');
