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
  const typeScript = typeScriptLocation(text);
  if (typeScript) return typeScript;
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

/**
 * Node's type stripping reports a TypeScript syntax error as "FILE:LINE", a few
 * source lines with a caret under the error, then "SyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: …":
 * the same text as above with the column added and the caret's own line kept; null for other text.
 */
function typeScriptLocation(text: string): string | null {
  const lines = text.split('\n');
  const head = /^(\/.*):(\d+)$/.exec(lines[0] ?? '');
  const caret = lines.findIndex((l, i) => i > 1 && /^ *\^+$/.test(l));
  const error = lines.findIndex((l) => /^SyntaxError\b/.test(l));
  if (!head || caret < 0 || error < caret) return null;
  const column = lines[caret]!.indexOf('^') + 1;
  return `${head[1]}:${head[2]}:${column}\n${lines[caret - 1]}\n${lines[caret]}\n\n${lines.slice(error).join('\n')}`;
}

/** The first line of a failed load's text that says what went wrong (a located one starts with where). */
export function loadErrorMessage(text: string): string {
  const lines = text.split('\n');
  return /^\/.*:\d+(:\d+)?$/.test(lines[0] ?? '') ? (lines.find((l) => /^[A-Za-z]*Error\b/.test(l)) ?? lines[0]!) : lines[0]!;
}
