// Counts the responses this process served and writes the count to
// $BENCH_COUNT_DIR/<pid>.count, so the bench can see how requests were
// spread over worker processes. A timer (not a write per request) keeps the
// cost off the measured path; the bench waits past one interval before reading.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.BENCH_COUNT_DIR;
const file = dir ? join(dir, `${process.pid}.count`) : undefined;
let served = 0;

// Write-then-rename, so the bench never reads a half-written file.
function flush() {
  if (!file) return;
  writeFileSync(`${file}.tmp`, String(served));
  renameSync(`${file}.tmp`, file);
}

if (file) {
  flush();
  setInterval(flush, 200).unref();
  process.on('exit', flush);
}

export function countResponse() {
  served += 1;
}
