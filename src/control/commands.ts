// The operator's subcommands of `tsgunicorn`, which talk to a running master
// over its control socket and never start a server. Only their declarations
// load with the CLI (whose process becomes the master); what they do is in
// client.ts, loaded when one runs.
import { Command, Option } from 'commander';
import { EXIT } from '../ipc.js';
import { isScaleCount, SCALE_FORM } from './protocol.js';

type Run = (code: Promise<number>) => void;

const socketOption = (): Option =>
  new Option('--socket <PATH>', 'The control socket of a server not run as a systemd instance (its control_socket setting)');
const target = (command: Command, nameHelp: string): Command => command.argument('[NAME]', nameHelp).addOption(socketOption());

/** Adds status, top, reload, scale, kill-worker and reopen-logs; `run` receives each one's exit code. */
export function addControlCommands(program: Command, run: Run): void {
  const client = () => import('./client.js');
  target(program.command('status'), 'The instance (tsgunicorn@NAME); without it, one line per running instance')
    .description('Show a running server: master, listeners, request rate and latency, and each worker')
    .option('--json', 'Print the full status as JSON (protocol version 1)')
    .action((name: string | undefined, options: { socket?: string; json?: boolean }) => run(client().then((c) => c.status(name, options))));
  target(program.command('top'), 'The instance (tsgunicorn@NAME)')
    .description('The status of a running server, refreshed every second until q or Ctrl-C')
    .action((name: string | undefined, options: { socket?: string }) => run(client().then((c) => c.top(name, options))));
  target(program.command('reload'), 'The instance (tsgunicorn@NAME)')
    .description('Start workers with the new code and settings, then retire the old ones')
    .option('--wait', 'Return once the new workers serve; exit 1 with the reason if they do not (the old ones keep serving)')
    .action((name: string | undefined, options: { socket?: string; wait?: boolean }) =>
      run(client().then((c) => c.simple(name, options, { v: 1, cmd: 'reload', wait: options.wait === true }))),
    );
  program
    .command('scale')
    .description('Run N workers from now on (until the next restart or reload)')
    .argument('<NAME_OR_N>', 'The instance, then N; or only N with --socket')
    .argument('[N]')
    .addOption(socketOption())
    .action((first: string, second: string | undefined, options: { socket?: string }) => {
      const [name, count] = nameThenValue(first, second);
      // Decimal digits only: Number() would take 1e3, 0x10 and ' 4 '.
      if (!/^\d+$/.test(count) || !isScaleCount(Number(count))) {
        process.stderr.write(`tsgunicorn: error: scale: N must be ${SCALE_FORM}, not '${count}'\n`);
        return run(Promise.resolve(EXIT.CONFIG));
      }
      run(client().then((c) => c.simple(name, options, { v: 1, cmd: 'scale', workers: Number(count) })));
    });
  program
    .command('kill-worker')
    .description('Kill one worker at once (SIGKILL); the master replaces it')
    .argument('<NAME_OR_PID>', 'The instance, then the worker pid; or only the pid with --socket')
    .argument('[PID]')
    .addOption(socketOption())
    .action((first: string, second: string | undefined, options: { socket?: string }) => {
      const [name, pid] = nameThenValue(first, second);
      run(client().then((c) => c.simple(name, options, { v: 1, cmd: 'kill-worker', pid: Number(pid) })));
    });
  target(program.command('reopen-logs'), 'The instance (tsgunicorn@NAME)')
    .description('Reopen the log files (after logrotate moved them)')
    .action((name: string | undefined, options: { socket?: string }) =>
      run(client().then((c) => c.simple(name, options, { v: 1, cmd: 'reopen-logs' }))),
    );
}

/**
 * For an APP that is neither a file nor a subcommand but looks like one:
 * "unknown command 'stauts' (did you mean status?)", else null.
 */
export function unknownCommand(word: string, commands: readonly string[]): string | null {
  if (!/^[a-z][a-z-]*$/.test(word)) return null;
  const near = commands.filter(
    (c) => distance(word, c) <= Math.max(1, Math.floor(c.length / 3)) || (word.length >= 3 && c.startsWith(word)),
  );
  const hint = near.length > 0 ? ` (did you mean ${near.join(' or ')}?)` : '';
  return `unknown command '${word}'${hint}; to serve a file or directory of that name, give its path (./${word}); see tsgunicorn --help`;
}

// Edit distance, a swap of two neighbours counting as one edit (optimal string alignment).
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** `NAME VALUE`, or only `VALUE` when the server is named by --socket. */
function nameThenValue(first: string, second: string | undefined): [string | undefined, string] {
  return second === undefined ? [undefined, first] : [first, second];
}
