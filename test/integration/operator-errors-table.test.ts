// Bad input from the command line, the environment and the ini file, as a table:
// each case ends with its documented exit code (2 for a bad setting, 1 for an
// address that cannot be listened on) and one line that names the setting and the
// cause, with no stack trace and no worker started.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STACK_FRAME, asRoot, errorText, runAsOperator, scratch } from '../helpers/operator.js';
import { selfSigned } from '../helpers/tls.js';
import { FIXTURES } from '../helpers/tsgunicorn.js';

const APP = path.join(FIXTURES, 'reliability/app.mjs');
const dir = scratch();
const file = (name: string) => path.join(dir, name);
const MISSING = '/nonexistent-dir';

interface Case {
  what: string;
  args?: string[];
  env?: Record<string, string>;
  ini?: string;
  code: 1 | 2;
  message: RegExp | (() => RegExp);
  unprivileged?: boolean;
}

let busy: net.Server;
const busyPort = () => (busy.address() as net.AddressInfo).port;

// One case a line reads as the table it is.
// prettier-ignore
const CASES: Case[] = [
  // Command line.
  { what: 'no workers', args: ['-w', '0'], code: 2, message: /option --workers: workers: expected an integer from 1 to 1024, or auto, got "0"/ },
  { what: 'a number of workers past any integer', args: ['-w', '99999999999999999999'], code: 2, message: /workers: expected an integer from 1 to 1024/ },
  { what: '40,000 workers', args: ['-w', '40000'], code: 2, message: /workers: expected an integer from 1 to 1024, or auto, got "40000"/ },
  { what: '1,025 workers', args: ['-w', '1025'], code: 2, message: /workers: expected an integer from 1 to 1024/ },
  { what: 'workers as a word', args: ['-w', 'many'], code: 2, message: /workers: expected an integer from 1 to 1024, or auto, got "many"/ },
  { what: 'graceful_timeout past the timer range', args: ['--graceful-timeout', '3000000'], code: 2, message: /graceful_timeout: expected a number of seconds from 0 to 2147483, got "3000000"/ },
  { what: 'health_check_period past the timer range', args: ['--health-check-period', '3000000'], code: 2, message: /health_check_period: expected a number of seconds from 0.1 to 2147483/ },
  { what: 'timeout one second past the timer range', args: ['-t', '2147484'], code: 2, message: /option --timeout: timeout: expected a number of seconds from 0 to 2147483/ },
  { what: 'keepalive past the timer range', args: ['--keep-alive', '1e9'], code: 2, message: /keepalive: expected a number of seconds from 0 to 2147483, got "1e9"/ },
  { what: 'a negative keep-alive', args: ['--keep-alive=-1'], code: 2, message: /keepalive: expected a number of seconds/ },
  { what: 'a header_timeout of 0', args: ['--header-timeout', '0'], code: 2, message: /header_timeout: expected a number of seconds from 1 to 2147483, got "0"/ },
  { what: 'a request_timeout with a unit', args: ['--request-timeout', '5s'], code: 2, message: /request_timeout: expected a number of seconds from 0 to 2147483, got "5s"/ },
  { what: 'a backlog of 0', args: ['--backlog', '0'], code: 2, message: /backlog: expected an integer ≥ 1, got "0"/ },
  { what: 'a request line limit past 65535', args: ['--limit-request-line', '70000'], code: 2, message: /limit_request_line: expected an integer from 0 to 65535/ },
  { what: 'a negative max_connections', args: ['--max-connections=-5'], code: 2, message: /max_connections: expected an integer ≥ 0, got "-5"/ },
  { what: 'an unknown log level', args: ['--log-level', 'verbose'], code: 2, message: /loglevel: expected one of debug, info, warning, error, critical/ },
  { what: 'an unknown interface', args: ['--interface', 'wsgi'], code: 2, message: /interface: expected one of auto, node, fetch/ },
  { what: 'a non-ASCII host', args: ['-b', 'ünïcode:8000'], code: 2, message: /option --bind: bind: .*"ünïcode" is neither an IP address nor a host name/ },
  { what: 'a host with a space', args: ['-b', 'exa mple:8000'], code: 2, message: /bind: .*"exa mple" is neither an IP address nor a host name/ },
  { what: 'a port past 65535', args: ['-b', '127.0.0.1:70000'], code: 2, message: /bind: expected HOST:PORT/ },
  { what: 'a raw_env without =', args: ['-e', 'NOTAPAIR'], code: 2, message: /raw_env: expected a KEY=VALUE pair, got "NOTAPAIR"/ },
  { what: 'a PID file in a missing directory', args: ['--pid', `${MISSING}/x.pid`], code: 2, message: /command line --pid: pidfile: \/nonexistent-dir\/x\.pid: the directory \/nonexistent-dir does not exist/ },
  { what: 'a hooks module that does not exist', args: ['--hooks', '/nonexistent.mjs'], code: 2, message: /command line --hooks: hooks: \/nonexistent\.mjs does not exist/ },
  { what: 'a certfile and keyfile that do not exist', args: ['--certfile', '/nonexistent.pem', '--keyfile', '/nonexistent.key'], code: 2, message: /command line --certfile: certfile: cannot read \/nonexistent\.pem \(no such file\)/ },
  { what: 'a keyfile without certfile', args: ['--keyfile', '/nonexistent.key'], code: 2, message: /keyfile is set but certfile is not: HTTPS needs both/ },
  { what: 'a certificate and a key that do not match', args: ['--certfile', file('a.crt'), '--keyfile', file('b.key')], code: 2, message: /certfile .*a\.crt and keyfile .*b\.key: not a usable pair \(.*\)/ },
  { what: 'a certificate that is not PEM', args: ['--certfile', file('garbage.crt'), '--keyfile', file('a.key')], code: 2, message: /garbage\.crt and keyfile .*a\.key: not a usable pair/ },
  { what: 'an error log in a missing directory', args: ['--error-logfile', `${MISSING}/error.log`], code: 2, message: /errorlog: \/nonexistent-dir\/error\.log: the directory \/nonexistent-dir does not exist/ },
  { what: 'an access log in a missing directory', args: ['--access-logfile', `${MISSING}/access.log`], code: 2, message: /accesslog: \/nonexistent-dir\/access\.log: the directory \/nonexistent-dir does not exist/ },
  { what: 'a chdir that does not exist', args: ['--chdir', MISSING], code: 2, message: /chdir \/nonexistent-dir: ENOENT/ },
  { what: 'a unix socket in a missing directory', args: ['-b', `unix:${MISSING}/app.sock`], code: 1, message: /Cannot bind unix:\/nonexistent-dir\/app\.sock: the directory \/nonexistent-dir does not exist/ },
  { what: 'the metrics port in use', args: ['--metrics-bind', 'PORT'], code: 1, message: () => new RegExp(`metrics_bind: Connection in use: 127\\.0\\.0\\.1:${busyPort()} \\(EADDRINUSE\\)`) },
  { what: 'a privileged metrics port', args: ['--metrics-bind', '127.0.0.1:81'], code: 1, unprivileged: true, message: /metrics_bind: Permission denied binding 127\.0\.0\.1:81: ports below 1024 need root/ },
  { what: 'a metrics_bind that is not an address', args: ['--metrics-bind', 'oops'], code: 2, message: /option --metrics-bind: metrics_bind: expected HOST:PORT or \[IPV6\]:PORT, as in 127\.0\.0\.1:9100, got "oops"$/ },
  { what: 'a metrics_bind on a unix socket', args: ['--metrics-bind', `unix:${dir}/metrics.sock`], code: 2, message: /metrics_bind: expected HOST:PORT or \[IPV6\]:PORT, as in 127\.0\.0\.1:9100, got "unix:.*": only a TCP address is served here/ },
  { what: '--check-config with a metrics_bind on a unix socket', args: ['--check-config', '--metrics-bind', 'unix:/tmp/x'], code: 2, message: /option --metrics-bind: metrics_bind: .*only a TCP address is served here/ },
  { what: '--check-config with a metrics port past 65535', args: ['--check-config', '--metrics-bind', '127.0.0.1:70000'], code: 2, message: /metrics_bind: expected HOST:PORT or \[IPV6\]:PORT/ },
  { what: 'a health_check_path with a space', args: ['--health-check-path', '/health check'], code: 2, message: /option --health-check-path: health_check_path: expected a URL path, as in \/health, got "\/health check"/ },
  { what: 'a health_check_path without its leading slash', args: ['--health-check-path', 'health'], code: 2, message: /health_check_path: expected a URL path, as in \/health, got "health"/ },
  { what: 'an access log header that is not a header name', args: ['--access-log-headers', 'x-request-id, user agent'], code: 2, message: /access_log_headers: expected a header name, got "user agent"/ },
  { what: 'an empty error log', args: ['--error-logfile', ''], code: 2, message: /option --error-logfile: errorlog: expected a file or -, got ""/ },
  { what: 'a control socket written as a bind address', args: ['--control-socket', `unix:${dir}/control.sock`], code: 2, message: /control_socket: expected auto, off or the path of a Unix socket, got "unix:.*": write the path without unix:/ },
  { what: 'a control socket group with a space', args: ['--control-socket-group', 'www data'], code: 2, message: /control_socket_group: expected a group name or GID, got "www data"/ },
  { what: 'the same address bound twice', args: ['-b', '127.0.0.1:18551', '-b', '127.0.0.1:18551'], code: 2, message: /command line --bind: bind: 127\.0\.0\.1:18551 and 127\.0\.0\.1:18551 are the same listening address: give each once/ },
  { what: 'an address and the wildcard on its port', args: ['-b', '127.0.0.1:18552', '-b', '0.0.0.0:18552'], code: 2, message: /bind: 0\.0\.0\.0:18552 and 127\.0\.0\.1:18552 are the same listening address/ },
  { what: 'metrics_bind on the app\'s address', args: ['-b', '127.0.0.1:18553', '--metrics-bind', '127.0.0.1:18553'], code: 2, message: /command line --metrics-bind: metrics_bind: 127\.0\.0\.1:18553 is also where the app listens \(bind 127\.0\.0\.1:18553\): give the metrics a port of their own/ },
  { what: 'a control socket in a missing directory', args: ['--control-socket', `${MISSING}/control.sock`], code: 2, message: /command line --control-socket: control_socket: \/nonexistent-dir\/control\.sock: the directory \/nonexistent-dir does not exist/ },
  { what: 'a config file that is a FIFO', args: ['-c', 'FIFO'], code: 2, message: /config file .*settings\.fifo: not a regular file: give the path of an ini file/ },
  { what: 'a config file of 2 MiB', args: ['-c', 'HUGE'], code: 2, message: /config file .*huge\.ini: 2097152 bytes, more than a config file holds \(1 MiB at most\)/ },
  { what: 'a forwarded_allow_ips with an empty item', args: ['--forwarded-allow-ips', '10.0.0.0/8,,'], code: 2, message: /forwarded_allow_ips: expected a comma-separated list of .*, got "10\.0\.0\.0\/8,,": an item is empty/ },
  { what: 'a control socket group that does not exist', args: ['--control-socket', `${dir}/group.sock`, '--control-socket-group', 'nosuchgroup'], code: 2, message: /control_socket_group: no group "nosuchgroup" on this machine: create it \(addgroup --system nosuchgroup\), or name another/ },
  // Environment.
  { what: 'TSGUNICORN_CONFIG=/dev/zero', env: { TSGUNICORN_CONFIG: '/dev/zero' }, code: 2, message: /config file \/dev\/zero: not a regular file/ },
  { what: 'TSGUNICORN_WORKERS=0', env: { TSGUNICORN_WORKERS: '0' }, code: 2, message: /environment TSGUNICORN_WORKERS: workers: expected an integer from 1 to 1024/ },
  { what: 'TSGUNICORN_WORKERS=40000', env: { TSGUNICORN_WORKERS: '40000' }, code: 2, message: /environment TSGUNICORN_WORKERS: workers: expected an integer from 1 to 1024/ },
  { what: 'TSGUNICORN_BIND with a non-ASCII host', env: { TSGUNICORN_BIND: 'ünïcode:8000' }, code: 2, message: /environment TSGUNICORN_BIND: bind: .*is neither an IP address nor a host name/ },
  { what: 'TSGUNICORN_GRACEFUL_TIMEOUT past the timer range', env: { TSGUNICORN_GRACEFUL_TIMEOUT: '3000000' }, code: 2, message: /environment TSGUNICORN_GRACEFUL_TIMEOUT: graceful_timeout: expected a number of seconds from 0 to 2147483/ },
  { what: 'TSGUNICORN_PIDFILE in a missing directory', env: { TSGUNICORN_PIDFILE: `${MISSING}/x.pid` }, code: 2, message: /environment TSGUNICORN_PIDFILE: pidfile: .*the directory \/nonexistent-dir does not exist/ },
  { what: 'TSGUNICORN_HOOKS that does not exist', env: { TSGUNICORN_HOOKS: '/nonexistent.mjs' }, code: 2, message: /environment TSGUNICORN_HOOKS: hooks: \/nonexistent\.mjs does not exist/ },
  { what: 'TSGUNICORN_ERRORLOG in a missing directory', env: { TSGUNICORN_ERRORLOG: `${MISSING}/error.log` }, code: 2, message: /environment TSGUNICORN_ERRORLOG: errorlog: .*does not exist/ },
  { what: 'a misspelt variable', env: { TSGUNICORN_WORKRES: '2' }, code: 2, message: /environment TSGUNICORN_WORKRES: unknown setting \(did you mean "TSGUNICORN_WORKERS"\?\)/ },
  { what: 'TSGUNICORN_RELOAD=maybe', env: { TSGUNICORN_RELOAD: 'maybe' }, code: 2, message: /environment TSGUNICORN_RELOAD: reload: expected true or false/ },
  { what: 'TSGUNICORN_METRICS_BIND that is not an address', env: { TSGUNICORN_METRICS_BIND: 'localhost' }, code: 2, message: /environment TSGUNICORN_METRICS_BIND: metrics_bind: expected HOST:PORT or \[IPV6\]:PORT, as in 127\.0\.0\.1:9100, got "localhost"$/ },
  { what: 'TSGUNICORN_METRICS_BIND on an inherited fd', env: { TSGUNICORN_METRICS_BIND: 'fd://3' }, code: 2, message: /environment TSGUNICORN_METRICS_BIND: metrics_bind: .*only a TCP address is served here/ },
  { what: 'TSGUNICORN_HEALTH_CHECK_PATH without its leading slash', env: { TSGUNICORN_HEALTH_CHECK_PATH: 'healthz' }, code: 2, message: /environment TSGUNICORN_HEALTH_CHECK_PATH: health_check_path: expected a URL path/ },
  { what: 'TSGUNICORN_HEALTH_CHECK_TIMEOUT past the timer range', env: { TSGUNICORN_HEALTH_CHECK_TIMEOUT: '9999999' }, code: 2, message: /health_check_timeout: expected a number of seconds from 0.1 to 2147483/ },
  // The ini file.
  { what: 'workers[] = 2 (array syntax for a single value)', ini: 'workers[] = 2\n', code: 2, message: /bad\.ini:1: workers takes one value: write `workers = 2`, not `workers\[\] = …`/ },
  { what: 'timeout[] = 5', ini: 'bind = 127.0.0.1:0\ntimeout[] = 5\n', code: 2, message: /bad\.ini:2: timeout takes one value: write `timeout = 5`/ },
  { what: 'workers = 40000', ini: 'workers = 40000\n', code: 2, message: /bad\.ini:1: workers: expected an integer from 1 to 1024/ },
  { what: 'graceful_timeout = 3000000', ini: 'graceful_timeout = 3000000\n', code: 2, message: /bad\.ini:1: graceful_timeout: expected a number of seconds from 0 to 2147483/ },
  { what: 'health_check_period = 3000000', ini: 'health_check_period = 3000000\n', code: 2, message: /bad\.ini:1: health_check_period: expected a number of seconds from 0.1 to 2147483/ },
  { what: 'a non-ASCII bind', ini: 'bind = ünïcode:8000\n', code: 2, message: /bad\.ini:1: bind: .*is neither an IP address nor a host name/ },
  { what: 'a section', ini: '[server]\nworkers = 2\n', code: 2, message: /bad\.ini:1: section \[server\] is not used/ },
  { what: 'an unknown key', ini: 'wokers = 2\n', code: 2, message: /bad\.ini:1: unknown setting "wokers" \(did you mean "workers"\?\)/ },
  { what: 'a PID file in a missing directory', ini: `pidfile = ${MISSING}/x.pid\n`, code: 2, message: /bad\.ini:1: pidfile: .*the directory \/nonexistent-dir does not exist/ },
  { what: 'a certificate and a key that do not match', ini: `certfile = CERT\nkeyfile = KEY\n`, code: 2, message: /bad\.ini:1: certfile .*a\.crt and keyfile .*b\.key: not a usable pair/ },
  { what: 'an access log in a missing directory', ini: `accesslog = ${MISSING}/access.log\n`, code: 2, message: /bad\.ini:1: accesslog: .*the directory \/nonexistent-dir does not exist/ },
  { what: 'a metrics_bind with a port past 65535', ini: 'workers = 1\nmetrics_bind = 127.0.0.1:99999\n', code: 2, message: /bad\.ini:2: metrics_bind: expected HOST:PORT or \[IPV6\]:PORT, as in 127\.0\.0\.1:9100, got "127\.0\.0\.1:99999"$/ },
  { what: 'a metrics_bind on a unix socket', ini: 'metrics_bind = unix:/run/tsgunicorn/metrics.sock\n', code: 2, message: /bad\.ini:1: metrics_bind: .*only a TCP address is served here/ },
  { what: 'a health_check_path that is a URL', ini: 'health_check_path = http://localhost/health\n', code: 2, message: /bad\.ini:1: health_check_path: expected a URL path, as in \/health, got "http:\/\/localhost\/health"/ },
  { what: 'a setting written twice', ini: 'workers = 2\nbind = 127.0.0.1:0\nworkers = 3\n', code: 2, message: /bad\.ini:3: workers is set again \(first at line 1\): keep one of the two lines/ },
  { what: 'proxy_protocol with no proxy allowed', ini: 'proxy_protocol = v2\nproxy_allow_ips =\n', code: 2, message: /bad\.ini:2: proxy_allow_ips is empty while proxy_protocol is v2: every connection would be refused, the health check included/ },
  { what: 'proxy_allow_ips with a trailing comma', ini: 'proxy_allow_ips = 10.0.0.0/8,\n', code: 2, message: /bad\.ini:1: proxy_allow_ips: .*an item is empty/ },
];

beforeAll(async () => {
  // Two self-signed pairs: a.crt with b.key is a certificate and a key that do not belong together.
  for (const name of ['a', 'b']) selfSigned(dir, name);
  writeFileSync(file('garbage.crt'), 'not a certificate\n');
  execFileSync('mkfifo', [file('settings.fifo')]);
  writeFileSync(file('huge.ini'), Buffer.alloc(2 * 1024 * 1024, '; padding\n'));
  busy = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => busy.once('listening', resolve));
});
afterAll(() => busy.close());

describe(`operator errors: ${CASES.length} bad inputs, each one line and its exit code`, () => {
  it('has at least 40 cases', () => expect(CASES.length).toBeGreaterThanOrEqual(40));

  it.each(CASES.map((c) => [`${c.ini ? 'ini' : c.env ? 'env' : 'flag'}: ${c.what}`, c] as const))('%s', async (_, c) => {
    const named: Record<string, () => string> = {
      PORT: () => `127.0.0.1:${busyPort()}`,
      FIFO: () => file('settings.fifo'),
      HUGE: () => file('huge.ini'),
    };
    const args = (c.args ?? []).map((a) => named[a]?.() ?? a);
    const env = c.env ?? {};
    if (c.ini !== undefined) {
      const ini = file('bad.ini');
      writeFileSync(ini, c.ini.replace('CERT', file('a.crt')).replace('KEY', file('b.key')));
      args.unshift('-c', ini);
    }
    // Where the case sets neither, a free port and one worker: a case that wrongly starts serves nothing in anyone's way.
    const given = JSON.stringify([c.args, c.env, c.ini]);
    if (!/"-b"|"TSGUNICORN_BIND"|"bind |\\nbind /.test(given)) args.unshift('-b', '127.0.0.1:0');
    if (!/workers|"-w"|WORKERS/.test(given)) args.unshift('-w', '1');
    const { code, output } = await runAsOperator([...args, APP], { env, timeoutMs: 8000, unprivileged: c.unprivileged });
    const text = errorText(output);
    expect(text, output).not.toMatch(STACK_FRAME);
    expect(output, output).not.toMatch(/Booting worker/);
    expect(text.split('\n'), output).toHaveLength(1);
    expect(text).toMatch(typeof c.message === 'function' ? c.message() : c.message);
    expect(code, output).toBe(c.code);
  });

  it('--print-config still shows settings whose directories do not exist yet (systemd creates them at start)', async () => {
    const { code, output } = await runAsOperator([
      '--print-config',
      '--pid',
      `${MISSING}/x.pid`,
      '--error-logfile',
      `${MISSING}/e.log`,
      APP,
    ]);
    expect(code, output).toBe(0);
    expect(output).toMatch(/^pidfile = \/nonexistent-dir\/x\.pid +; command line --pid$/m);
  });

  it.runIf(asRoot)('runs the unprivileged case as nobody', () => expect(CASES.some((c) => c.unprivileged)).toBe(true));
});
