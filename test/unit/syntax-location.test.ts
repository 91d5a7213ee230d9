// A syntax error in an ES module names the file, line and column (Node's own
// error from import() does not).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadErrorMessage, withSyntaxLocation } from '../../src/syntax-location.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tsg-syntax-'));
writeFileSync(path.join(dir, 'broken.mjs'), 'export const app = (req, res) => {\n  res.end("x"\n};\n');
writeFileSync(path.join(dir, 'typed.ts'), 'const a: number = 1;\nexport const app = (req: any, res: any) => {\n  res.end("x" +);\n};\n');
writeFileSync(path.join(dir, 'app.mjs'), "import './broken.mjs';\nexport const app = () => {};\n");

/** The stack of the error import() gives in a plain node process, as a worker sees it (vitest's own import transforms modules). */
function importError(file: string): string {
  const script = 'try { await import(process.argv[1]); } catch (err) { process.stdout.write(err.stack); }';
  return execFileSync(process.execPath, ['--input-type=module', '-e', script, pathToFileURL(path.join(dir, file)).href], {
    encoding: 'utf8',
  });
}

describe('withSyntaxLocation', () => {
  it('puts FILE:LINE:COLUMN, the source line and a caret before the error of the module it is in', () => {
    const stack = importError('app.mjs');
    expect(stack).toMatch(/^SyntaxError: missing \) after argument list\n/);
    expect(stack).not.toContain(dir);
    const shown = withSyntaxLocation(stack, 'app.mjs', dir);
    expect(shown).toBe(`${path.join(dir, 'broken.mjs')}:2:11\n  res.end("x"\n          ^^^\n\n${stack}`);
    // A directory APP: its entry point (here app.mjs) is imported.
    expect(withSyntaxLocation(stack, dir)).toBe(shown);
  });

  it('adds the column to a TypeScript syntax error, and its message is what the reload failure says', () => {
    const stack = importError('typed.ts');
    expect(stack).toMatch(new RegExp(`^${path.join(dir, 'typed.ts')}:3\n`));
    const shown = withSyntaxLocation(stack, 'typed.ts', dir);
    expect(shown.split('\n').slice(0, 5)).toEqual([
      `${path.join(dir, 'typed.ts')}:3:16`,
      '  res.end("x" +);',
      '               ^',
      '',
      'SyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: Expression expected',
    ]);
    expect(loadErrorMessage(shown)).toBe('SyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: Expression expected');
    expect(loadErrorMessage('Error: boom\n    at x')).toBe('Error: boom');
  });

  it('leaves other errors as they are', () => {
    expect(withSyntaxLocation('Error: boom', 'app.mjs', dir)).toBe('Error: boom');
  });
});
