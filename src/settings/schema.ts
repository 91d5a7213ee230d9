// Every setting, declared once. The CLI, the ini config file, the TSGUNICORN_*
// environment variables, --help, --print-config, the README's settings table and
// the man page are all derived from this table (Gunicorn's config.py pattern).
// Names follow Gunicorn's wherever Gunicorn has the setting.
import { LEVELS } from '../logging/levels.js';
import {
  address,
  boolean,
  choice,
  controlSocket,
  directory,
  group,
  headerName,
  integer,
  keyValueList,
  list,
  logFile,
  megabytes,
  moduleSpecifier,
  nonEmptyList,
  optional,
  seconds,
  tcpAddress,
  text,
  urlPath,
  words,
  workerCount,
  type Kind,
} from './kinds.js';
import { addressRange } from './address-ranges.js';

/** A setting: its value's type is its kind's, and the default is checked against it (not the other way round). */
export interface SettingSpec<T> {
  kind: Kind<T>;
  default: NoInfer<T>;
  /** Commander flags, e.g. "-b, --bind <ADDRESS>"; booleans take no argument. */
  flags: string;
  section: Section;
  help: string;
  /** Repeatable on the command line (each use adds an item). */
  repeatable?: boolean;
  /** Read from the command line and environment only: not an ini key (e.g. `config` itself). */
  cliOnly?: boolean;
}

export type Section = 'Config' | 'Server socket' | 'Worker processes' | 'Logging' | 'Security and limits' | 'Metrics and health' | 'System';

const def = <T>(spec: SettingSpec<T>): SettingSpec<T> => spec;

const specs = {
  // Config
  config: def({
    kind: optional(text),
    default: null,
    flags: '-c, --config <FILE>',
    section: 'Config',
    cliOnly: true,
    help: 'The ini config file to read settings from.',
  }),
  app: def({
    kind: optional(text),
    default: null,
    flags: '--app <APP>',
    section: 'Config',
    help: 'The app to serve: MODULE[:NAME] or MODULE:factory(ARGS) (same as the positional APP).',
  }),
  app_args: def({
    kind: words,
    default: [],
    flags: '--app-args <ARGS>',
    section: 'Config',
    help: 'Arguments the app gets in process.argv after its path, as with `node APP ARGS` (on the command line, also `tsgunicorn [options] APP -- ARGS`).',
  }),
  chdir: def({
    kind: optional(directory),
    default: null,
    flags: '--chdir <DIR>',
    section: 'Config',
    help: 'Change to this directory before loading the app; app paths are relative to it.',
  }),
  interface: def({
    kind: choice('auto', 'node', 'fetch'),
    default: 'auto',
    flags: '--interface <KIND>',
    section: 'Config',
    help: 'How to call an exported app: node (req, res) listener, fetch (Request => Response) handler, or auto-detect. A module that calls listen() itself is served as a server script.',
  }),
  hooks: def({
    kind: optional(text),
    default: null,
    flags: '--hooks <MODULE>',
    section: 'Config',
    help: 'A module exporting server hooks: on_starting, when_ready, on_reload, post_worker_init, worker_exit, on_exit.',
  }),
  preload: def({
    kind: list(moduleSpecifier),
    default: [],
    flags: '--preload <MODULES>',
    section: 'Config',
    repeatable: true,
    help: "Modules (package names or paths) each worker loads before the app, in order, as node --require/--import would (ESM or CommonJS): APM agents such as @opentelemetry/auto-instrumentations-node/register, dd-trace/init or newrelic. Looked up from chdir, then from the app's directory; one that fails to load stops the boot.",
  }),
  reload: def({
    kind: boolean,
    default: false,
    flags: '--reload',
    section: 'Config',
    help: 'Restart workers when source files under chdir change (development only).',
  }),
  raw_env: def({
    kind: keyValueList,
    default: [],
    flags: '-e, --env <KEY=VALUE>',
    section: 'Config',
    repeatable: true,
    help: 'Set environment variables for the app: repeat the option (or the ini line) to add more; a value may hold commas.',
  }),
  pidfile: def({
    kind: optional(text),
    default: null,
    flags: '-p, --pid <FILE>',
    section: 'Config',
    help: "Write the master's PID to this file (its directory must exist).",
  }),
  proc_name: def({
    kind: optional(text),
    default: null,
    flags: '-n, --name <NAME>',
    section: 'Config',
    help: 'The name in process titles (tsgunicorn: master [NAME]), default APP as given, and the journal identifier, default tsgunicorn.',
  }),

  // Server socket
  bind: def({
    kind: nonEmptyList(address),
    default: [{ kind: 'tcp', host: '127.0.0.1', port: 8000 }],
    flags: '-b, --bind <ADDRESS>',
    section: 'Server socket',
    repeatable: true,
    help: 'Listen on HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N (repeatable). A host name listens on every address it resolves to. Sockets from systemd take precedence.',
  }),
  backlog: def({
    kind: integer(1),
    default: 2048,
    flags: '--backlog <INT>',
    section: 'Server socket',
    help: 'The most pending connections the kernel queues per listening socket.',
  }),
  certfile: def({
    kind: optional(text),
    default: null,
    flags: '--certfile <FILE>',
    section: 'Server socket',
    help: 'TLS certificate (PEM); with keyfile, serve HTTPS.',
  }),
  keyfile: def({
    kind: optional(text),
    default: null,
    flags: '--keyfile <FILE>',
    section: 'Server socket',
    help: 'TLS private key (PEM); with certfile, serve HTTPS.',
  }),
  http_protocols: def({
    kind: { ...nonEmptyList(choice('h1', 'h2')), form: 'a comma-separated list of h1, h2' },
    default: ['h1'],
    flags: '--http-protocols <LIST>',
    section: 'Server socket',
    help: 'The protocols served over TLS (certfile), offered by ALPN: h1 (HTTP/1.1), h2 (HTTP/2), or both (h2,h1). h2 needs certfile; for cleartext HTTP/2 behind a proxy see http2_cleartext.',
  }),
  http2_cleartext: def({
    kind: choice('off', 'prior-knowledge', 'upgrade', 'both'),
    default: 'off',
    flags: '--http2-cleartext <MODE>',
    section: 'Server socket',
    help: 'Cleartext HTTP/2 (h2c) on a plain socket, for peers in forwarded_allow_ips only: prior-knowledge serves a connection that opens with the HTTP/2 preface as HTTP/2; upgrade answers an HTTP/1.1 request with Upgrade: h2c (and no body) 101 and goes on in HTTP/2; both does either. Every other connection is HTTP/1.1. Never expose h2c to the internet.',
  }),
  http2_max_concurrent_streams: def({
    kind: integer(1, 2 ** 31 - 1),
    default: 100,
    flags: '--http2-max-concurrent-streams <INT>',
    section: 'Server socket',
    help: 'The most streams an HTTP/2 client may have open on a session (SETTINGS_MAX_CONCURRENT_STREAMS).',
  }),
  http2_initial_window_size: def({
    kind: integer(0, 2 ** 31 - 1),
    default: 65535,
    flags: '--http2-initial-window-size <BYTES>',
    section: 'Server socket',
    help: 'The flow-control window of each HTTP/2 stream, in bytes: how much a client may send before the app reads (SETTINGS_INITIAL_WINDOW_SIZE).',
  }),
  http2_max_frame_size: def({
    kind: integer(16384, 16777215),
    default: 16384,
    flags: '--http2-max-frame-size <BYTES>',
    section: 'Server socket',
    help: 'The largest HTTP/2 frame payload accepted, 16384 to 16777215 bytes (SETTINGS_MAX_FRAME_SIZE).',
  }),
  http2_max_header_list_size: def({
    kind: integer(0, 2 ** 32 - 1),
    default: 65536,
    flags: '--http2-max-header-list-size <BYTES>',
    section: 'Server socket',
    help: 'The largest header list of an HTTP/2 request, uncompressed, in bytes (SETTINGS_MAX_HEADER_LIST_SIZE).',
  }),

  // Worker processes
  workers: def({
    kind: workerCount,
    default: 'auto',
    flags: '-w, --workers <INT>',
    section: 'Worker processes',
    help: 'How many worker processes, or auto for one per available CPU.',
  }),
  timeout: def({
    kind: seconds(0),
    default: 30,
    flags: '-t, --timeout <SECONDS>',
    section: 'Worker processes',
    help: 'Kill and replace a worker whose event loop is blocked this long (0 disables).',
  }),
  graceful_timeout: def({
    kind: seconds(0),
    default: 30,
    flags: '--graceful-timeout <SECONDS>',
    section: 'Worker processes',
    help: 'How long a stopping worker may take to finish in-flight requests before it is killed.',
  }),
  drain_delay: def({
    kind: seconds(0),
    default: 0,
    flags: '--drain-delay <SECONDS>',
    section: 'Worker processes',
    help: 'On a graceful stop, answer health_check_path with 503 (serving all else) this long before the listeners close, so a load balancer takes the host out first.',
  }),
  keepalive: def({
    kind: seconds(0),
    default: 5,
    flags: '--keep-alive <SECONDS>',
    section: 'Worker processes',
    help: 'How long an idle keep-alive connection stays open (0 disables keep-alive).',
  }),
  max_requests: def({
    kind: integer(0),
    default: 0,
    flags: '--max-requests <INT>',
    section: 'Worker processes',
    help: 'Replace a worker after it has served this many requests (0 disables).',
  }),
  max_requests_jitter: def({
    kind: integer(0),
    default: 0,
    flags: '--max-requests-jitter <INT>',
    section: 'Worker processes',
    help: 'Add a random 0..N to max_requests per worker, so workers do not all restart at once.',
  }),
  max_worker_memory: def({
    kind: megabytes,
    default: 0,
    flags: '--max-worker-memory <MB>',
    section: 'Worker processes',
    help: 'Replace a worker whose resident memory (RSS) exceeds this many megabytes (0 disables).',
  }),

  // Logging
  accesslog: def({
    kind: optional(logFile),
    default: null,
    flags: '--access-logfile <FILE>',
    section: 'Logging',
    help: 'Where to write the access log: a file (its directory must exist), or - for stdout. Off when unset.',
  }),
  access_log_format: def({
    kind: text,
    default: '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    flags: '--access-logformat <FORMAT>',
    section: 'Logging',
    help: "The access log line, in Gunicorn's atoms (h l u t r m U q H s B b f a T M D L p {header}i {header}o {var}e), and trace_id and span_id (the request's trace, - when none).",
  }),
  access_log_json: def({
    kind: boolean,
    default: false,
    flags: '--access-log-json',
    section: 'Logging',
    help: 'Write each access log entry as one JSON object per line (time, method, protocol, path, query, status, bytes, duration_us, remote_addr, user_agent, worker_pid, trace_id and span_id when the request has a trace, headers) instead of access_log_format.',
  }),
  access_log_headers: def({
    kind: list(headerName),
    default: [],
    flags: '--access-log-headers <NAMES>',
    section: 'Logging',
    help: 'Request headers added to each JSON access log entry, under "headers" (comma-separated names).',
  }),
  errorlog: def({
    kind: logFile,
    default: '-',
    flags: '--error-logfile <FILE>',
    section: 'Logging',
    help: 'Where to write the error log: a file (its directory must exist), or - for stderr (the journal under systemd).',
  }),
  loglevel: def({
    kind: choice(...LEVELS),
    default: 'info',
    flags: '--log-level <LEVEL>',
    section: 'Logging',
    help: 'The least severe error-log level written.',
  }),

  // Security and limits
  forwarded_allow_ips: def({
    kind: list(addressRange),
    default: ['127.0.0.1', '::1'],
    flags: '--forwarded-allow-ips <IPS>',
    section: 'Security and limits',
    help: 'Proxies trusted to set X-Forwarded-For/-Proto (comma-separated IPs or CIDR ranges such as 10.0.0.0/8, or * for any).',
  }),
  proxy_protocol: def({
    kind: choice('off', 'v1', 'v2', 'auto'),
    default: 'off',
    flags: '--proxy-protocol <VERSION>',
    section: 'Security and limits',
    help: 'Require a PROXY protocol header (v1, v2, or auto for either) on every connection, from a load balancer in proxy_allow_ips; its client address is the one logged and seen by the app.',
  }),
  proxy_allow_ips: def({
    kind: list(addressRange),
    default: ['127.0.0.1', '::1'],
    flags: '--proxy-allow-from <IPS>',
    section: 'Security and limits',
    help: 'Peers allowed to send a PROXY protocol header (comma-separated IPs or CIDR ranges, or * for any); others are disconnected.',
  }),
  limit_request_line: def({
    kind: integer(0, 65535),
    default: 4094,
    flags: '--limit-request-line <BYTES>',
    section: 'Security and limits',
    help: 'The longest request line accepted (answered with 414 beyond it); 0 for no limit.',
  }),
  limit_request_fields: def({
    kind: integer(1, 32768),
    default: 100,
    flags: '--limit-request-fields <INT>',
    section: 'Security and limits',
    help: 'The most header fields a request may have (answered with 431 beyond it).',
  }),
  limit_request_field_size: def({
    kind: integer(0, 65535),
    default: 8190,
    flags: '--limit-request-field_size <BYTES>',
    section: 'Security and limits',
    help: 'The largest header field accepted, counted as Gunicorn does: its line `Name: value` and CRLF (answered with 431 beyond it); 0 for no limit.',
  }),
  header_timeout: def({
    kind: seconds(1),
    default: 20,
    flags: '--header-timeout <SECONDS>',
    section: 'Security and limits',
    help: 'Close a connection that has not sent complete request headers within this time (slowloris). Over TLS the handshake is held to this time too, before the headers get theirs.',
  }),
  request_timeout: def({
    kind: seconds(0),
    default: 60,
    flags: '--request-timeout <SECONDS>',
    section: 'Security and limits',
    help: 'Close a connection whose whole request (headers and body) takes longer than this (0 disables). Set below header_timeout, it bounds the headers too: the shorter of the two applies.',
  }),
  max_connections: def({
    kind: integer(0),
    default: 10000,
    flags: '--max-connections <INT>',
    section: 'Security and limits',
    help: 'The most open client connections per worker, over all its sockets (the server holds workers × this). A full worker stops accepting until one closes: new connections go to the other workers, or wait in the backlog (0 for no limit).',
  }),

  // Metrics and health
  metrics_bind: def({
    kind: optional(tcpAddress),
    default: null,
    flags: '--metrics-bind <HOST:PORT>',
    section: 'Metrics and health',
    help: 'Serve Prometheus metrics for all workers at http://HOST:PORT/metrics from the master. Off when unset.',
  }),
  health_check_path: def({
    kind: optional(urlPath),
    default: null,
    flags: '--health-check-path <PATH>',
    section: 'Metrics and health',
    help: 'The app route the master probes (e.g. /health) through the listening socket. Off when unset.',
  }),
  health_check_initial_delay: def({
    kind: seconds(0),
    default: 5,
    flags: '--health-check-initial-delay <SECONDS>',
    section: 'Metrics and health',
    help: 'Wait this long after workers are ready before the first probe.',
  }),
  health_check_period: def({
    kind: seconds(0.1),
    default: 10,
    flags: '--health-check-period <SECONDS>',
    section: 'Metrics and health',
    help: 'Time between probes.',
  }),
  health_check_timeout: def({
    kind: seconds(0.1),
    default: 2,
    flags: '--health-check-timeout <SECONDS>',
    section: 'Metrics and health',
    help: 'A probe without a 2xx answer within this time fails.',
  }),
  health_check_success_threshold: def({
    kind: integer(1),
    default: 1,
    flags: '--health-check-success-threshold <INT>',
    section: 'Metrics and health',
    help: 'Consecutive successes that make an unhealthy server healthy again.',
  }),
  health_check_failure_threshold: def({
    kind: integer(1),
    default: 3,
    flags: '--health-check-failure-threshold <INT>',
    section: 'Metrics and health',
    help: 'Consecutive failures that mark the server unhealthy and replace its workers.',
  }),

  // System
  require_minimums: def({
    kind: boolean,
    default: false,
    flags: '--require-minimums',
    section: 'System',
    help: 'Refuse to start when the machine is below the hardware minimums (see tsgunicorn doctor).',
  }),
  control_socket: def({
    kind: controlSocket,
    default: 'auto',
    flags: '--control-socket <PATH>',
    section: 'System',
    help: "The Unix socket `tsgunicorn status`, `reload`, `scale`, `kill-worker` and `reopen-logs` talk to (never TCP). auto: control.sock in the unit's RuntimeDirectory under systemd ($RUNTIME_DIRECTORY), else $XDG_RUNTIME_DIR/tsgunicorn.sock, else off; off: none.",
  }),
  control_socket_group: def({
    kind: optional(group),
    default: null,
    flags: '--control-socket-group <GROUP>',
    section: 'System',
    help: "A group whose members may use the control socket too (mode 0660); the server's user must be in it, or the server does not start (exit 2); under tsgunicorn@NAME, whose sandbox keeps it from other groups, that takes a drop-in with PrivateUsers=no, SupplementaryGroups=GROUP and SystemCallFilter=@chown. Unset: only its owner, the user the server runs as (mode 0600).",
  }),
};

type Specs = typeof specs;
export type SettingName = keyof Specs;
/** Each setting's value, of the type its kind parses to. */
export type Settings = { [K in SettingName]: ReturnType<Specs[K]['kind']['parse']> };
/**
 * The same table, typed per name: for a name N, schema[N].kind takes and
 * gives Settings[N], so code over any setting needs no cast (see formatSetting).
 */
export const schema: { [K in SettingName]: SettingSpec<Settings[K]> } = specs;

/** A setting's value as a config file would hold it. */
export const formatSetting = <N extends SettingName>(name: N, value: Settings[N]): string => schema[name].kind.format(value);

export const settingNames = Object.keys(schema) as SettingName[];
export const envName = (name: SettingName): string => `TSGUNICORN_${name.toUpperCase()}`;
export const ENV_PREFIX = 'TSGUNICORN_';

/** What names the server where proc_name is unset and nothing else does. */
const PROGRAM_NAME = 'tsgunicorn';

/** The NAME in process titles, `tsgunicorn: master [NAME]`: proc_name, else the app as given (Gunicorn's default_proc_name). */
export const titleName = (settings: Pick<Settings, 'proc_name' | 'app'>): string => settings.proc_name ?? settings.app ?? PROGRAM_NAME;

/** SYSLOG_IDENTIFIER of journal entries: proc_name (an instance's name under systemd), else tsgunicorn. */
export const journalIdentifier = (settings: Pick<Settings, 'proc_name'>): string => settings.proc_name ?? PROGRAM_NAME;
