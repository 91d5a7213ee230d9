import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { LogOutput } from '../../src/logging/log-output.js';

it('a batched output writes every line, in order and as UTF-8, however the lines fill its batches', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'log-output-')), 'access.log');
  const output = new LogOutput(path, 1, 'access log', () => {}, true);
  const lines: string[] = [];
  // Enough lines to fill several batches, some with multi-byte characters (3 and 4 bytes in UTF-8)
  // near the edges of a batch, and lines longer than a batch between them.
  for (let i = 0; i < 3000; i++) {
    const line = i % 500 === 7 ? `${'x'.repeat(70_000)}${i}\n` : `${i} GET /caf\u00e9/\u20ac/\ud83d\ude00 ${'-'.repeat(i % 97)}\n`;
    lines.push(line);
    output.write(line);
  }
  await output.close();
  expect(readFileSync(path, 'utf8')).toBe(lines.join(''));
});
