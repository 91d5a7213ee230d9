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
import { ConfigError, describeSource, resolveSettings, type CliValues, type ResolvedSettings } from './settings/resolve.js';
import { formatSetting, journalIdentifier, schema, settingNames, type SettingName } from './settings/schema.js';
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
  addControlCommands(program, onCommand);
  return { program, settingOf };
}

async function main(argv: string[]): Promise<number> {
  const unsupported = unsupportedRuntime();
  if (unsupported) return failWith(unsupported, EXIT.FAILURE);
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
  program.action((app?: string) => {
    appArgument = app;
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
  if (appArgument) cli.app = appArgument;

  const instance = options.instance as string | undefined;
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
  let resolved: ResolvedSettings;
  try {
    resolved = options.printConfig ? settingsOnly() : resolve();
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.message, err.exitCode);
    throw err;
  }
  const { settings } = resolved;
  if (options.printConfig) {
    // An instance listens where its socket unit does, whatever bind says.
    const { instanceBind } = await import('./systemd/bind-check.js');
    printConfig(resolved, instance ? instanceBind(instance, resolved) : null);
    return EXIT.OK;
  }
  if (!settings.app) {
    const config = settings.config ? `, nor in ${settings.config}` : ' (no config file given)';
    return fail(
      `no app to serve: none on the command line, nor in the environment (TSGUNICORN_APP)${config}: give APP (tsgunicorn [options] app.ts) or set \`app\` in the config file`,
      EXIT.CONFIG,
    );
  }
  if (settings.chdir) {
    try {
      process.chdir(settings.chdir);
    } catch (err) {
      return fail(
        `chdir ${settings.chdir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}${sandboxHint(settings.chdir, err)}`,
        EXIT.CONFIG,
      );
    }
  }
  try {
    // Before anything is forked: a mistyped APP (or a subcommand that does not exist) never starts a server.
    resolveAppModule(parseAppSpec(settings.app).module, process.cwd());
  } catch (err) {
    // A word that is neither a file here nor a subcommand is most likely a mistyped subcommand.
    const mistyped =
      appArgument &&
      !existsSync(appArgument) &&
      unknownCommand(
        appArgument,
        program.commands.map((c) => c.name()),
      );
    if (mistyped) return fail(mistyped, EXIT.CONFIG);
    if (err instanceof AppLoadError) return fail(err.message, err.exitCode);
    throw err;
  }
  if (options.checkConfig) return checkConfig(resolved, fail);
  if (settings.metrics_bind) {
    try {
      await checkCanListen('metrics_bind', settings.metrics_bind);
    } catch (err) {
      if (err instanceof BindError) return fail(err.message, EXIT.FAILURE);
      throw err;
    }
  }

  if (settings.require_minimums) {
    const { table, ok } = await checkMachine();
    if (!ok) return fail(`below the hardware minimums (require_minimums = true):\n${table}`, EXIT.FAILURE);
  }

  // The workers write the access log; the master only opening and watching it
  // would report each logrotate a second time.
  const logger = createLogger({ ...settings, accesslog: null }, { journal: journalForStderr(journalIdentifier(settings)) });
  const notifier = createNotifier(process.env, process.pid, (msg) => logger.debug(msg));
  const inherited = takeListenFds();
  try {
    const hooks = await loadHooks(settings.hooks, process.cwd(), logger);
    const master = new Master({
      resolved,
      reloadSettings: resolve,
      logger,
      hooks,
      notifier,
      inherited,
      version,
    });
    const code = await master.run();
    await logger.close();
    return code;
  } catch (err) {
    if (err instanceof BindError) {
      logger.error(err.message);
      await logger.close();
      return EXIT.FAILURE;
    }
    logger.critical('The master failed', err);
    await logger.close();
    return EXIT.FAILURE;
  }
}

/** `procName`: proc_name as far as it is known (settings may not have been read). */
function failWith(message: string, code: number, procName: string | null = null): number {
  const line = `tsgunicorn: error: ${message}`;
  // Under systemd, stderr lines reach the journal at priority info: an entry of
  // its own is at err, so `journalctl -u UNIT -p err` shows why it did not start.
  if (!journalForStderr(journalIdentifier({ proc_name: procName }))?.send(3, line)) process.stderr.write(`${line}\n`);
  return code;
}

function printConfig({ settings, sources }: ResolvedSettings, served: { value: string; source: string; note: string | null } | null): void {
  const lines = settingNames.map((name) => {
    const value = served && name === 'bind' ? served.value : formatSetting(name, settings[name]);
    const line = `${schema[name].cliOnly ? '; ' : ''}${name} = ${value}`;
    const source = served && name === 'bind' ? served.source : describeSource(sources[name]);
    return `${line.padEnd(48)} ; ${source}${served?.note && name === 'bind' ? `\n; ${served.note}` : ''}`;
  });
  process.stdout.write(`${lines.join('\n')}\n`);
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
  const { listenWaitMs, loadApp } = await import('./app/load.js');
  try {
    // As a worker loads it, so a server script's listen() binds nothing here either.
    const app = await loadApp(settings.app!, process.cwd(), {
      interface: settings.interface,
      listenWaitMs: listenWaitMs(settings),
      onFetchError: () => {},
      onParked: () => {},
    });
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
