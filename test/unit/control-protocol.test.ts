// The control socket's request parsing and the CLI's did-you-mean for mistyped subcommands.
import { describe, expect, it } from 'vitest';
import { unknownCommand } from '../../src/control/commands.js';
import { parseRequest } from '../../src/control/protocol.js';

const COMMANDS = ['doctor', 'status', 'top', 'reload', 'scale', 'kill-worker', 'reopen-logs'];

describe('parseRequest', () => {
  it('accepts each command of version 1 with its arguments', () => {
    expect(parseRequest('{"v":1,"cmd":"status"}')).toEqual({ v: 1, cmd: 'status' });
    expect(parseRequest('{"v":1,"cmd":"reload"}')).toEqual({ v: 1, cmd: 'reload', wait: false });
    expect(parseRequest('{"v":1,"cmd":"reload","wait":true}')).toEqual({ v: 1, cmd: 'reload', wait: true });
    expect(parseRequest('{"v":1,"cmd":"scale","workers":4}')).toEqual({ v: 1, cmd: 'scale', workers: 4 });
    expect(parseRequest('{"v":1,"cmd":"kill-worker","pid":812}')).toEqual({ v: 1, cmd: 'kill-worker', pid: 812 });
    expect(parseRequest('{"v":1,"cmd":"reopen-logs","extra":1}')).toEqual({ v: 1, cmd: 'reopen-logs' });
  });

  it.each([
    ['', 'malformed request: not JSON'],
    ['null', 'malformed request: not a JSON object'],
    ['"status"', 'malformed request: not a JSON object'],
    ['{"cmd":"status"}', 'unsupported protocol version undefined (this server speaks 1)'],
    ['{"v":"1","cmd":"status"}', 'unsupported protocol version "1" (this server speaks 1)'],
    ['{"v":1}', 'unknown command undefined'],
    ['{"v":1,"cmd":"__proto__"}', 'unknown command "__proto__"'],
    ['{"v":1,"cmd":"reload","wait":"yes"}', 'reload: wait must be true or false'],
    ['{"v":1,"cmd":"scale","workers":0}', 'scale: workers must be a whole number from 1 to 1024, not 0'],
    ['{"v":1,"cmd":"scale","workers":1.5}', 'scale: workers must be a whole number from 1 to 1024, not 1.5'],
    ['{"v":1,"cmd":"scale","workers":1025}', 'scale: workers must be a whole number from 1 to 1024, not 1025'],
    ['{"v":1,"cmd":"scale","workers":"16"}', 'scale: workers must be a whole number from 1 to 1024, not "16"'],
    ['{"v":1,"cmd":"kill-worker","pid":"812"}', 'kill-worker: pid must be a process id'],
  ])('refuses %s: %s', (line, reason) => {
    expect(parseRequest(line)).toBe(reason);
  });
});

describe('unknownCommand', () => {
  it('suggests the subcommands near a mistyped word', () => {
    expect(unknownCommand('stauts', COMMANDS)).toMatch(/^unknown command 'stauts' \(did you mean status\?\);/);
    expect(unknownCommand('kill', COMMANDS)).toMatch(/\(did you mean kill-worker\?\)/);
    expect(unknownCommand('reopen', COMMANDS)).toMatch(/\(did you mean reopen-logs\?\)/);
    expect(unknownCommand('tpo', COMMANDS)).toMatch(/\(did you mean top\?\)/);
  });

  it('names none when none is near, and leaves paths, modules and app specs alone', () => {
    expect(unknownCommand('frobnicate', COMMANDS)).toMatch(/^unknown command 'frobnicate'; to serve a file/);
    for (const app of ['app.ts', './status', 'build/', 'server:app', 'Status1']) expect(unknownCommand(app, COMMANDS)).toBeNull();
  });
});
