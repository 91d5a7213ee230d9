// Writes the man pages tsgunicorn(1) and tsgunicorn.ini(5) into OUTDIR, from
// the settings schema (the one table every setting is declared in), so the
// pages always list the settings, defaults and environment variables the
// program actually has. Needs `npm run build` first (reads dist/js).
//
// Usage: node packaging/gen-man.mjs OUTDIR
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '..');
const outDir = process.argv[2];
if (!outDir) {
  console.error('usage: gen-man.mjs OUTDIR');
  process.exit(2);
}
const { schema, envName } = await import(pathToFileURL(path.join(root, 'dist/js/settings/schema.js')).href);
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

/** Text made safe for roff (groff_man(7)): backslashes, leading control characters, non-ASCII. */
const esc = (s) =>
  s
    .replace(/\\/g, '\\e')
    // Dashes that start an option are minus signs (\-); others are hyphens.
    .replace(/(^|[\s("[])(-+)(?=\w)/gm, (_, before, dashes) => before + dashes.replace(/-/g, '\\-'))
    .replace(/^([.'])/gm, '\\&$1')
    .replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
const bold = (s) => `\\fB${esc(s)}\\fR`;
const italic = (s) => `\\fI${esc(s)}\\fR`;

/** "-b, --bind <ADDRESS>" → bold flags, italic argument. */
const flagsText = (flags) =>
  flags
    .split(/,\s*/)
    .map((f) => f.replace(/^(\S+)(?: <(.+)>)?$/, (_, name, arg) => (arg ? `${bold(name)} ${italic(arg)}` : bold(name))))
    .join(', ');

const defaultText = (spec) => {
  const text = spec.kind.format(spec.default);
  return text === '' ? 'unset' : text;
};

const settingsBySection = () => {
  const sections = new Map();
  for (const [name, spec] of Object.entries(schema)) {
    if (!sections.has(spec.section)) sections.set(spec.section, []);
    sections.get(spec.section).push([name, spec]);
  }
  return sections;
};

const header = (title, section, manual) => `.TH ${title} ${section} "" "tsgunicorn ${version}" "${manual}"`;

function commandPage() {
  const lines = [
    header('TSGUNICORN', 1, 'User Commands'),
    '.SH NAME',
    'tsgunicorn \\- pre\\-fork HTTP server for Node.js and TypeScript web apps',
    '.SH SYNOPSIS',
    `${bold('tsgunicorn')} [${italic('OPTIONS')}] [${italic('APP')}]`,
    '.br',
    `${bold('tsgunicorn --instance')} ${italic('NAME')}`,
    '.br',
    `${bold('tsgunicorn doctor')}`,
    '.br',
    `${bold('tsgunicorn')} ${bold('status')} [${italic('NAME')} | ${bold('--socket')} ${italic('PATH')}] [${bold('--json')}]`,
    '.br',
    `${bold('tsgunicorn')} {${bold('top')} | ${bold('reload')} [${bold('--wait')}] | ${bold('reopen-logs')}} ${italic('NAME')}`,
    '.br',
    `${bold('tsgunicorn scale')} ${italic('NAME N')}`,
    '.br',
    `${bold('tsgunicorn kill-worker')} ${italic('NAME PID')}`,
    '.SH DESCRIPTION',
    esc(
      'tsgunicorn serves a Node.js or TypeScript web app the way Gunicorn serves Python ones: a master process binds the listening sockets (or receives them from systemd socket activation), starts worker processes that accept connections on them, and supervises them: it replaces workers that die or hang, reloads them without dropping connections, and reports its state to systemd.',
    ),
    '.PP',
    esc(
      'APP is the module to serve, MODULE[:NAME] or MODULE:factory(ARGS): a file exporting a Node.js (req, res) request listener or a fetch-style (Request => Response) handler, as its default export or under NAME.',
    ),
    '.PP',
    esc(
      'Each setting below can be given on the command line, as a TSGUNICORN_* environment variable, or as a key in the ini config file (see tsgunicorn.ini(5)). The command line wins over the environment, which wins over the config file, which wins over the defaults.',
    ),
    '.SH OPTIONS',
  ];
  for (const [section, settings] of settingsBySection()) {
    lines.push(`.SS ${esc(section)}`);
    for (const [name, spec] of settings) {
      lines.push('.TP', flagsText(spec.flags), esc(spec.help));
      const where = [`Default: ${defaultText(spec)}.`, `Environment: ${envName(name)}.`];
      if (!spec.cliOnly) where.push(`Config file key: ${name}.`);
      if (spec.repeatable) where.push('Repeatable.');
      lines.push('.br', esc(`Value: ${spec.kind.form}. ${where.join(' ')}`));
    }
  }
  lines.push(
    '.SS Other options',
    '.TP',
    `${bold('--instance')} ${italic('NAME')}`,
    esc(
      'Serve the systemd instance NAME (as tsgunicorn@NAME.service does): read /etc/tsgunicorn/NAME.ini; without it, serve /srv/NAME/app.ts, app.js, app.mjs or app.cjs, the first that exists.',
    ),
    '.TP',
    bold('--check-config'),
    esc('Validate the settings and import the app, then exit (0 when all is well).'),
    '.TP',
    bold('--print-config'),
    esc('Print the effective settings and where each value came from, then exit.'),
    '.TP',
    `${bold('-v')}, ${bold('--version')}`,
    'Print the version and exit.',
    '.TP',
    `${bold('-h')}, ${bold('--help')}`,
    'Print the options and exit.',
    '.SH COMMANDS',
    '.TP',
    bold('doctor'),
    esc(
      'Check this machine against the hardware minimums (2 CPU cores, 4 GB of memory, 20 GB on the filesystem holding /var/lib) and the supported OS (Ubuntu 22.04; another OS is only noted). Prints a table; exits 1 when a minimum is unmet. With require_minimums set, tsgunicorn refuses to start on such a machine.',
    ),
    '.PP',
    esc(
      'The commands below talk to a running server over its control socket (a Unix socket, mode 0600: the user the server runs as and root; see control_socket and control_socket_group): /run/tsgunicorn/NAME/control.sock for the instance NAME, or the PATH given with --socket. They never start a server, exit 0 on success and 1 with one line on stderr otherwise. An unknown command exits 2.',
    ),
    '.TP',
    `${bold('status')} [${italic('NAME')}] [${bold('--json')}]`,
    esc(
      'The master (pid, version, uptime, generation, listeners, health), requests (total, rate, p50 and p99), restarts by reason, the last failed reload, and each worker: pid, generation, age, state, requests served, in flight, the oldest request in flight, RSS and CPU. Without NAME: one line per running instance.',
    ),
    '.TP',
    `${bold('top')} ${italic('NAME')}`,
    esc('The same, refreshed every second until q or Ctrl-C.'),
    '.TP',
    `${bold('reload')} ${italic('NAME')} [${bold('--wait')}]`,
    esc(
      'Start a new generation of workers with fresh code and settings, then retire the old one. With --wait, return once it serves, or exit 1 with the reason while the old workers keep serving. systemctl reload runs this.',
    ),
    '.TP',
    `${bold('scale')} ${italic('NAME N')}`,
    esc('Run N workers from now on.'),
    '.TP',
    `${bold('kill-worker')} ${italic('NAME PID')}`,
    esc('Kill one worker (SIGKILL); the master replaces it.'),
    '.TP',
    `${bold('reopen-logs')} ${italic('NAME')}`,
    esc('Reopen the log files.'),
    '.SH SYSTEMD',
    esc(
      'The package installs the template units tsgunicorn@.service and tsgunicorn@.socket, bash completion, and a generator that gives tsgunicorn@NAME.socket the addresses of the bind line of /etc/tsgunicorn/NAME.ini (port 8000 without one). "systemctl enable --now tsgunicorn@NAME" serves instance NAME now and after every boot; "systemctl reload tsgunicorn@NAME" replaces its workers gracefully, waits until the new ones serve, and fails with the reason (shown by systemctl status) when they do not; "systemctl kill -s USR1 --kill-who=main tsgunicorn@NAME" reopens its log files (the packaged logrotate config does it for /var/log/tsgunicorn/*/*.log). Instances run as the system user tsgunicorn and log to the journal (journalctl -u tsgunicorn@NAME; errors that stop the start are entries at priority err, journalctl -u tsgunicorn@NAME -p err), with the journald rate limit raised for the unit (LogRateLimitBurst=100000 per second) so that no access entry is dropped. Exit statuses 2, 3 and 4 (shown by systemctl as 2/INVALIDARGUMENT, 3/NOTIMPLEMENTED, 4/NOPERMISSION) do not restart the service: fix the cause and start it again.',
    ),
    '.SH SANDBOX',
    esc(
      'tsgunicorn@.service runs the app in a sandbox. ProtectSystem=strict: the app may write only /var/lib/tsgunicorn/NAME, /var/log/tsgunicorn/NAME (log files, readable by group adm), /var/cache/tsgunicorn/NAME and /run/tsgunicorn/NAME; everything else, /srv/NAME included, is read-only (EROFS) even when the service user owns it. ProtectHome=yes: /home, /root and /run/user are hidden (EACCES). An error the sandbox causes names it and the drop-in that changes it. Drop-ins, written with "systemctl edit tsgunicorn@NAME" under [Service], then "systemctl restart tsgunicorn@NAME":',
    ),
    '.RS',
    '.nf',
    'ReadWritePaths=/srv/NAME/uploads           a directory the app may write',
    'ProtectHome=read-only                      an app under /home',
    'Environment=NODE_OPTIONS=--max-old-space-size=512',
    'MemoryMax=1G                               a memory limit for the instance',
    '.fi',
    '.RE',
    '.SH EXIT STATUS',
    esc(
      '0 after a clean shutdown; 1 when the server failed or doctor found an unmet minimum; 2 for an invalid setting or command line, or nothing to serve; 3 when a worker failed to boot; 4 when the app failed to load.',
    ),
    '.SH FILES',
    '.TP',
    italic('/etc/tsgunicorn/NAME.ini'),
    esc('Settings of the instance tsgunicorn@NAME.'),
    '.TP',
    italic('/srv/NAME/'),
    esc("The app of an instance whose config names none: package.json's main, else server.*, index.* or app.*."),
    '.TP',
    italic('/var/log/tsgunicorn/NAME/'),
    esc('Where an instance may write log files (accesslog, errorlog); rotated by /etc/logrotate.d/tsgunicorn.'),
    '.TP',
    italic('/usr/share/tsgunicorn/examples/'),
    esc('An example instance config (instance.ini) and app (hello/).'),
    '.SH SEE ALSO',
    `${bold('tsgunicorn.ini')}(5), ${bold('systemd.service')}(5), ${bold('systemd.socket')}(5), ${bold('journalctl')}(1)`,
  );
  return lines.join('\n') + '\n';
}

function configPage() {
  const lines = [
    header('TSGUNICORN.INI', 5, 'File Formats'),
    '.SH NAME',
    'tsgunicorn.ini \\- tsgunicorn configuration file',
    '.SH SYNOPSIS',
    italic('/etc/tsgunicorn/NAME.ini'),
    '.SH DESCRIPTION',
    esc(
      'An ini file of "key = value" lines, read with --config FILE, or by the systemd instance tsgunicorn@NAME from /etc/tsgunicorn/NAME.ini. Keys are written at the top of the file: a [section] is an error. Lines starting with # or ; are comments. A list is written comma-separated on one line, or as repeated "key[] = value" lines. Repeated raw_env lines add up, and in raw_env a comma starts the next pair only where KEY= follows it, so a value may hold commas. A boolean is true, false, yes, no, on, off, 1 or 0. An unknown key or a bad value stops tsgunicorn with a message naming the file and line.',
    ),
    '.PP',
    esc('Environment variables (TSGUNICORN_KEY) and command-line options override the file; see tsgunicorn(1).'),
    '.SH SETTINGS',
  ];
  for (const [section, settings] of settingsBySection()) {
    const keys = settings.filter(([, spec]) => !spec.cliOnly);
    if (keys.length === 0) continue;
    lines.push(`.SS ${esc(section)}`);
    for (const [name, spec] of keys) {
      lines.push('.TP', `${bold(name)} = ${italic(spec.kind.form)}`, esc(spec.help));
      lines.push(
        '.br',
        esc(`Default: ${defaultText(spec)}. Command line: ${spec.flags.replace(/ <.*>$/, '')}. Environment: ${envName(name)}.`),
      );
    }
  }
  lines.push(
    '.SH EXAMPLE',
    '.nf',
    esc(
      [
        '# /etc/tsgunicorn/shop.ini: served by tsgunicorn@shop',
        'chdir = /srv/shop',
        'app = server.ts',
        'bind = 127.0.0.1:8080',
        'workers = 4',
        'max_requests = 10000',
        'max_requests_jitter = 500',
        'health_check_path = /health',
        'metrics_bind = 127.0.0.1:9100',
      ].join('\n'),
    ),
    '.fi',
    '.PP',
    esc('A commented example is installed as /usr/share/tsgunicorn/examples/instance.ini.'),
    '.SH SEE ALSO',
    `${bold('tsgunicorn')}(1)`,
  );
  return lines.join('\n') + '\n';
}

mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, 'tsgunicorn.1'), commandPage());
writeFileSync(path.join(outDir, 'tsgunicorn.ini.5'), configPage());
