// The `tsgunicorn` command: options and help derived from the settings schema,
// then either a one-shot action (--check-config, --print-config, doctor, or a
// control command such as status or reload, sent to a running server) or the
// master process.
import { createRequire } from 'node:module';
import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { AppLoadError, describeLoadFailure, parseAppSpec, resolveAppModule } from './app/spec.js';
import { addControlCommands, unknownCommand } from './control/commands.js';
import { loadHooks } from './hooks.js';
import { EXIT } from './ipc.js';
import { unsupportedRuntime } from './runtime-check.js';
import { createLogger } from './logging/logger.js';
import { Master } from './master/master.js';
import { instanceSettings } from './settings/instance.js';
import { checkFiles } from './settings/preflight.js';
import { words } from './settings/kinds.js';
import { ConfigError, describeSource, resolveSettings, type CliValues, type ResolvedSettings } from './settings/resolve.js';
import { formatSetting, journalIdentifier, schema, settingNames, type SettingName, type Settings } from './settings/schema.js';
import { BindError, checkCanListen } from './sockets.js';
import { journalForStderr } from './systemd/journal.js';
import { sandboxHint } from './systemd/sandbox.js';
import { takeListenFds } from './systemd/listen-fds.js';
import { createNotifier } from './systemd/notify.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

function buildProgram(
  onDoctor: (code: number) => void,
  onCommand: (code: Promise<number>) => void,
): { program: Command; settingOf: Map<string, SettingName> } {
  const program = new Command('tsgunicorn')
    .description('Serve a Node.js web app with a master process and pre-forked workers (the Gunicorn of Node.js).')
    .version(version, '-v, --version')
    .argument('[APP]', 'MODULE[:NAME] or MODULE:factory(ARGS): a .js/.mjs/.cjs/.ts file and the export to serve (default: app)')
    .argument('[ARGS...]', 'after --: the arguments the app gets in process.argv, as with node APP ARGS (app_args)')
    .helpOption('-h, --help', 'Show this help')
    .addOption(
      new Option('--check-config', 'Validate the settings and import the app, then exit (0 when all is well)').helpGroup('Commands:'),
    )
    .addOption(
      new Option('--print-config', 'Print the effective settings and where each value came from, then exit').helpGroup('Commands:'),
    )
    .addOption(
      new Option('--instance <NAME>', 'Serve instance NAME: /etc/tsgunicorn/NAME.ini, else /srv/NAME/app.*').helpGroup('Commands:'),
    )
    .allowExcessArguments(false);
  const settingOf = new Map<string, SettingName>();
  for (const name of settingNames) {
    const spec = schema[name];
    const shownDefault = formatSetting(name, spec.default);
    const help = `${spec.help}${shownDefault === '' || shownDefault === 'false' ? '' : ` [${shownDefault}]`} (${name})`;
    const option = new Option(spec.flags, help).helpGroup(`${spec.section}:`);
    if (spec.repeatable) option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    program.addOption(option);
    settingOf.set(option.attributeName(), name);
  }
  program
    .command('doctor')
    .description('Check this machine against the hardware minimums (exit 1 when one is unmet)')
    .action(async () => {
      const { table, ok } = await checkMachine();
      process.stdout.write(table);
      onDoctor(ok ? EXIT.OK : EXIT.FAILURE);
    });
  // The ExecStartPre= of tsgunicorn@NAME.socket, not a command for people.
  program
    .command('check-ports', { hidden: true })
    .argument('<NAME>', 'The instance (tsgunicorn@NAME)')
    .action((name: string) => onCommand(import('./systemd/port-check.js').then((m) => m.checkPorts(name))));
  addControlCommands(program, onCommand);
  return { program, settingOf };
}

/** What the command line asks for, when it asks for a server (or a check of one). */
interface CommandLine {
  cli: CliValues;
  instance: string | undefined;
  printConfig: boolean;
  checkConfig: boolean;
  /** APP as typed, which may be a mistyped subcommand. */
  appArgument: string | undefined;
  subcommands: string[];
}

/** The command line, or the exit code when it was all there was to do (help, doctor, a control command, a usage error). */
async function parseCommandLine(argv: string[]): Promise<CommandLine | number> {
  let doctorExit: number | undefined;
  let commandExit: Promise<number> | undefined;
  const { program, settingOf } = buildProgram(
    (code) => (doctorExit = code),
    (code) => {
      commandExit = code;
    },
  );
  program.exitOverride();
  let appArgument: string | undefined;
  let appArgs: string[] = [];
  program.action((app: string | undefined, args: string[]) => {
    appArgument = app;
    appArgs = args;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code === 0 ? EXIT.OK : EXIT.CONFIG;
  }
  if (doctorExit !== undefined) return doctorExit;
  if (commandExit !== undefined) return commandExit;

  const options = program.opts();
  const cli: CliValues = {};
  for (const [attribute, value] of Object.entries(options)) {
    const name = settingOf.get(attribute);
    if (name && value !== undefined) cli[name] = value as string | string[] | boolean;
  }
  // Everything after -- is the app's: with APP from the config file, `tsgunicorn -c app.ini -- ARGS` has no APP before it.
  const dashes = argv.indexOf('--');
  const afterDashes = dashes === -1 ? [] : argv.slice(dashes + 1);
  if (afterDashes.length > appArgs.length) {
    appArgument = undefined;
    appArgs = afterDashes;
  } else if (afterDashes.length < appArgs.length) {
    // Only after --: a stray word is more likely a mistake than an argument for the app.
    return failWith(
      `unexpected argument ${JSON.stringify(appArgs[0])}: arguments for the app go after --, as in tsgunicorn [options] APP -- ARGS`,
      EXIT.CONFIG,
    );
  }
  if (appArgument) cli.app = appArgument;
  if (appArgs.length > 0) cli.app_args = words.format(appArgs);
  return {
    cli,
    instance: options.instance as string | undefined,
    printConfig: options.printConfig === true,
    checkConfig: options.checkConfig === true,
    appArgument,
    subcommands: program.commands.map((c) => c.name()),
  };
}

async function main(argv: string[]): Promise<number> {
  const unsupported = unsupportedRuntime();
  if (unsupported) return failWith(unsupported, EXIT.FAILURE);
  const command = await parseCommandLine(argv);
  if (typeof command === 'number') return command;
  const { cli, instance } = command;
  // Errors before the server starts go to the journal under the name its entries will have.
  const fail = (message: string, code: number): number =>
    failWith(message, code, instance ?? (typeof cli.proc_name === 'string' ? cli.proc_name : null));
  const settingsOnly = (): ResolvedSettings => (instance ? instanceSettings(instance, cli) : resolveSettings(cli));
  // Run again on every reload: the config file, and an instance's app, may have changed.
  const resolve = (): ResolvedSettings => {
    const resolved = settingsOnly();
    checkFiles(resolved.settings, resolved.sources);
    return resolved;
  };
  try {
    if (command.printConfig) return await printConfig(settingsOnly(), instance);
    const resolved = resolve();
    checkApp(resolved.settings, command);
    if (command.checkConfig) return await checkConfig(resolved, fail);
    await checkHost(resolved.settings);
    return await runMaster(resolved, resolve);
  } catch (err) {
    const code = refusalCode(err);
    if (code === null) throw err;
    return fail((err as Error).message, code);
  }
}

/** The exit code of an error that is the operator's to fix (its message says how), or null for a bug. */
function refusalCode(err: unknown): number | null {
  if (err instanceof ConfigError || err instanceof AppLoadError) return err.exitCode;
  if (err instanceof BindError || err instanceof BelowMinimums) return EXIT.FAILURE;
  return null;
}

class BelowMinimums extends Error {}

/** Before anything is forked: a mistyped APP (or a subcommand that does not exist) never starts a server. */
function checkApp(settings: Settings, { appArgument, subcommands }: CommandLine): void {
  if (!settings.app) {
    const config = settings.config ? `, nor in ${settings.config}` : ' (no config file given)';
    throw new ConfigError(
      `no app to serve: none on the command line, nor in the environment (TSGUNICORN_APP)${config}: give APP (tsgunicorn [options] app.ts) or set \`app\` in the config file`,
    );
  }
  if (settings.chdir) {
    try {
      process.chdir(settings.chdir);
    } catch (err) {
      throw new ConfigError(
        `chdir ${settings.chdir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}${sandboxHint(settings.chdir, err)}`,
      );
    }
  }
  try {
    resolveAppModule(parseAppSpec(settings.app).module, process.cwd());
  } catch (err) {
    // A word that is neither a file here nor a subcommand is most likely a mistyped subcommand.
    const mistyped = appArgument && !existsSync(appArgument) && unknownCommand(appArgument, subcommands);
    throw mistyped ? new ConfigError(mistyped) : err;
  }
}

/** What the server needs of this machine beyond its own sockets: the metrics port, and the hardware minimums if required. */
async function checkHost(settings: Settings): Promise<void> {
  if (settings.metrics_bind) await checkCanListen('metrics_bind', settings.metrics_bind);
  if (settings.require_minimums) {
    const { table, ok } = await checkMachine();
    if (!ok) throw new BelowMinimums(`below the hardware minimums (require_minimums = true):\n${table}`);
  }
}

async function runMaster(resolved: ResolvedSettings, reloadSettings: () => ResolvedSettings): Promise<number> {
  const { settings } = resolved;
  // The workers write the access log; the master only opening and watching it
  // would report each logrotate a second time.
  const logger = createLogger({ ...settings, accesslog: null }, { journal: journalForStderr(journalIdentifier(settings)) });
  const notifier = createNotifier(process.env, process.pid, (msg) => logger.debug(msg));
  const inherited = takeListenFds();
  let code: number = EXIT.FAILURE;
  try {
    const hooks = await loadHooks(settings.hooks, process.cwd(), logger);
    code = await new Master({ resolved, reloadSettings, logger, hooks, notifier, inherited, version }).run();
  } catch (err) {
    if (err instanceof BindError) logger.error(err.message);
    else logger.critical('The master failed', err);
  }
  await logger.close();
  return code;
}

/** `procName`: proc_name as far as it is known (settings may not have been read). */
function failWith(message: string, code: number, procName: string | null = null): number {
  const line = `tsgunicorn: error: ${message}`;
  // Under systemd, stderr lines reach the journal at priority info: an entry of
  // its own is at err, so `journalctl -u UNIT -p err` shows why it did not start.
  if (!journalForStderr(journalIdentifier({ proc_name: procName }))?.send(3, line)) process.stderr.write(`${line}\n`);
  return code;
}

async function printConfig(resolved: ResolvedSettings, instance: string | undefined): Promise<number> {
  const { settings, sources } = resolved;
  // An instance listens where its socket unit does, whatever bind says.
  const { instanceBind } = await import('./systemd/bind-check.js');
  const served = instance ? instanceBind(instance, resolved) : null;
  const lines = settingNames.map((name) => {
    const value = served && name === 'bind' ? served.value : formatSetting(name, settings[name]);
    const line = `${schema[name].cliOnly ? '; ' : ''}${name} = ${value}`;
    const source = served && name === 'bind' ? served.source : describeSource(sources[name]);
    return `${line.padEnd(48)} ; ${source}${served?.note && name === 'bind' ? `\n; ${served.note}` : ''}`;
  });
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT.OK;
}

// The modules below load only for the commands that need them: every module the
// master loads stays in its resident memory for the server's lifetime.
/** `tsgunicorn doctor`'s table, and whether the machine meets every minimum. */
async function checkMachine(): Promise<{ table: string; ok: boolean }> {
  const { formatDoctorTable, runDoctor } = await import('./doctor.js');
  const { rows, ok } = runDoctor();
  return { table: formatDoctorTable(rows), ok };
}

async function checkConfig({ settings }: ResolvedSettings, fail: (message: string, code: number) => number): Promise<number> {
  const { loadApp } = await import('./app/load.js');
  try {
    // As a worker loads it, so a server script's listen() binds nothing here either.
    const app = await loadApp(settings, process.cwd(), { onFetchError: () => {}, onParked: () => {} });
    const what =
      app.interface === 'server'
        ? `a server script (it asks for ${app.server.asked}, which is never bound: tsgunicorn serves it on its own sockets)`
        : `a ${app.interface} app${app.upgrade ? ' with an upgrade handler' : ''}`;
    process.stdout.write(`Config OK: ${settings.app} loads as ${what}\n`);
    return EXIT.OK;
  } catch (err) {
    const { message, exitCode } = describeLoadFailure(err);
    const { withSyntaxLocation } = await import('./syntax-location.js');
    return fail(`cannot load the app: ${withSyntaxLocation(message, settings.app!)}`, exitCode);
  }
}

process.exitCode = await main(process.argv);
// Lingering handles (a hook's timer, a half-closed socket) must not keep a
// finished master alive.
process.exit();
