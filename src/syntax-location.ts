// Where a syntax error in an ES module is: Node's SyntaxError from import()
// carries only the message and node:internal frames, and prints the file, line
// and source line only when the error goes uncaught. Asked of a child process
// that imports the app and lets the error go uncaught: parsing fails before any
// module runs, so none of the app's code runs there. Only on a failed load.
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { parseAppSpec, resolveAppModule } from './app/spec.js';

/**
 * `text` (a failed load's message) with "FILE:LINE:COLUMN", the source line and
 * a caret put first, when it is an ES module's SyntaxError that names no file;
 * `text` unchanged otherwise. `app` is the APP spec, relative to `cwd`.
 */
export function withSyntaxLocation(text: string, app: string, cwd = process.cwd()): string {
  if (!/^SyntaxError\b/.test(text)) return text;
  let file: string;
  try {
    file = resolveAppModule(parseAppSpec(app).module, cwd);
  } catch {
    return text;
  }
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', 'await import(process.argv[1])', pathToFileURL(file).href], {
    cwd,
    encoding: 'utf8',
    timeout: 10_000,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // "file:///app/server.mjs:3", the source line, the caret line, "", "SyntaxError: …".
  const m = /^(file:\/\/\S+):(\d+)\n(.*)\n( *)(\^+)\n\nSyntaxError\b/.exec(child.stderr ?? '');
  if (!m) return text;
  const [, url, line, source, indent] = m;
  const located = decodeURIComponent(new URL(url!).pathname);
  return `${located}:${line}:${indent!.length + 1}\n${source}\n${indent}${m[5]}\n\n${text}`;
}
