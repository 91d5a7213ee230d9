// What the operator's subcommands do (declared in commands.ts): connect to a
// master's control socket, send requests, print the replies.
import net from 'node:net';
import { EXIT } from '../ipc.js';
import { LineSplitter } from '../line-splitter.js';
import { instanceSocket } from './paths.js';
import type { ControlReply, ControlRequest, StatusReport } from './protocol.js';
import { formatInstances, formatStatus, type InstanceRow } from './format.js';

class ClientError extends Error {}

/** One connection to a master; requests are answered in order. */
class Connection {
  private readonly lines = new LineSplitter();
  private readonly waiting: Array<{ resolve: (reply: ControlReply) => void; reject: (err: Error) => void }> = [];

  private constructor(
    private readonly socket: net.Socket,
    where: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      for (const line of this.lines.push(chunk)) this.waiting.shift()?.resolve(JSON.parse(line) as ControlReply);
    });
    const gone = (err?: Error) => {
      for (const waiter of this.waiting.splice(0))
        waiter.reject(new ClientError(`${where}: the server closed the connection${err ? ` (${err.message})` : ''}`));
    };
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  static open(path: string, name: string | undefined): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(path);
      socket.once('connect', () => resolve(new Connection(socket, path)));
      socket.once('error', (err: NodeJS.ErrnoException) => reject(new ClientError(connectError(path, name, err))));
    });
  }

  /** The request's result; a refusal by the server is thrown as its reason. */
  async request(request: ControlRequest): Promise<unknown> {
    const reply = await new Promise<ControlReply>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(`${JSON.stringify(request)}\n`);
    });
    if (!reply.ok) throw new ClientError(reply.error);
    return reply.result;
  }

  close(): void {
    this.socket.end();
  }
}

function connectError(path: string, name: string | undefined, err: NodeJS.ErrnoException): string {
  const unit = name ? ` (systemctl status tsgunicorn@${name})` : '';
  switch (err.code) {
    case 'ENOENT':
      return `no control socket at ${path}: is the server running${unit}, with control_socket on?`;
    case 'ECONNREFUSED':
      return `${path}: nothing answers: the server is gone${unit}`;
    case 'EACCES':
      return `${path}: permission denied: run as the user the server runs as (or root), or set control_socket_group`;
    default:
      return `${path}: ${err.code ?? err.message}`;
  }
}

function socketOf(name: string | undefined, options: { socket?: string }): string {
  if (options.socket) return options.socket;
  if (name) return instanceSocket(name);
  throw new ClientError('which server? give an instance NAME (tsgunicorn@NAME) or --socket PATH');
}

// Runs one command: its exit code, with a failure said in one line on stderr.
async function attempt(body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (!(err instanceof ClientError)) throw err;
    process.stderr.write(`tsgunicorn: error: ${err.message}\n`);
    return EXIT.FAILURE;
  }
}

async function once(name: string | undefined, options: { socket?: string }, request: ControlRequest): Promise<unknown> {
  const connection = await Connection.open(socketOf(name, options), name);
  try {
    return await connection.request(request);
  } finally {
    connection.close();
  }
}

/** reload, scale, kill-worker, reopen-logs: say what happened, or why not. */
export function simple(name: string | undefined, options: { socket?: string }, request: ControlRequest): Promise<number> {
  return attempt(async () => {
    const result = (await once(name, options, request)) as Record<string, unknown>;
    const what: Record<ControlRequest['cmd'], () => string> = {
      status: () => '',
      reload: () => (result.started ? 'Reload started' : `Reloaded: generation ${String(result.generation)} serving`),
      scale: () => `Scaling to ${String(result.workers)} worker${result.workers === 1 ? '' : 's'}`,
      'kill-worker': () => `Killed worker ${String(result.killed)}; the master replaces it`,
      'reopen-logs': () => 'Log files reopened',
    };
    process.stdout.write(`${what[request.cmd]()}\n`);
    return EXIT.OK;
  });
}

export function status(name: string | undefined, options: { socket?: string; json?: boolean }): Promise<number> {
  return attempt(async () => {
    if (!name && !options.socket) return listInstances(options.json === true);
    let report: StatusReport;
    try {
      report = (await once(name, options, { v: 1, cmd: 'status' })) as StatusReport;
    } catch (err) {
      throw name && !options.socket ? await notRunning(name, err) : err;
    }
    process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report));
    return EXIT.OK;
  });
}

// An instance whose socket does not answer: what systemd says of its unit (failed: why, and what to run).
async function notRunning(name: string, err: unknown): Promise<unknown> {
  const { failureAdvice, unitStates } = await import('./instances.js');
  const state = unitStates([name]).get(name);
  if (!state || state.active === 'active' || state.active === 'reloading') return err;
  const unit = `tsgunicorn@${name}.service`;
  const said = failureAdvice(name, state) ?? (state.active === 'inactive' ? `stopped: systemctl start ${unit}` : state.active);
  return new ClientError(`${unit} ${said}`);
}

// Like `pm2 ls`: every instance, running or not (instances.ts says which).
async function listInstances(json: boolean): Promise<number> {
  const { failureAdvice, instanceNames, unitStates } = await import('./instances.js');
  const names = instanceNames();
  const states = unitStates(names);
  const rows: InstanceRow[] = await Promise.all(
    names.map(async (name): Promise<InstanceRow> => {
      const unit = states.get(name) ?? null;
      try {
        const report = (await once(name, {}, { v: 1, cmd: 'status' })) as StatusReport;
        return {
          name,
          unit,
          report,
          state: report.phase,
          lastFailure: report.reloadFailure ? `reload failed at ${report.reloadFailure.at}: ${report.reloadFailure.reason}` : null,
        };
      } catch (err) {
        const state = unit ? (unit.active === 'inactive' ? 'stopped' : unit.active === 'active' ? unit.sub : unit.active) : 'stopped';
        // Not running (or starting): nothing to read. Running, yet no answer: an unreadable row.
        const running = unit?.active === 'active' || unit?.active === 'reloading';
        return {
          name,
          unit,
          state,
          lastFailure: unit ? failureAdvice(name, unit) : null,
          error: running ? (err as Error).message : undefined,
        };
      }
    }),
  );
  if (json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else if (rows.length === 0) process.stdout.write('No instances: none has an ini in /etc/tsgunicorn, an app in /srv/NAME or a unit.\n');
  else process.stdout.write(formatInstances(rows));
  const unreadable = rows.filter((row) => row.error !== undefined);
  for (const row of unreadable) process.stderr.write(`tsgunicorn: error: ${row.name}: ${row.error}\n`);
  return unreadable.length > 0 ? EXIT.FAILURE : EXIT.OK;
}

export function top(name: string | undefined, options: { socket?: string }): Promise<number> {
  return attempt(async () => {
    const connection = await Connection.open(socketOf(name, options), name);
    const input = process.stdin;
    if (input.isTTY) input.setRawMode(true);
    let quit!: () => void;
    const quitting = new Promise<void>((resolve) => (quit = resolve));
    input.on('data', (key: Buffer) => {
      if (key.includes(0x71) || key.includes(0x03)) quit(); // q, Ctrl-C
    });
    input.on('end', quit);
    process.once('SIGINT', quit);
    try {
      while (true) {
        const report = (await connection.request({ v: 1, cmd: 'status' })) as StatusReport;
        process.stdout.write(`\x1b[H\x1b[2J${formatStatus(report)}\nq: quit\n`);
        const tick = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000));
        if (await Promise.race([tick, quitting.then(() => true)])) break;
      }
    } finally {
      if (input.isTTY) input.setRawMode(false);
      input.pause();
      connection.close();
    }
    return EXIT.OK;
  });
}
