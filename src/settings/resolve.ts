// Combines the layers of settings: defaults < config file < environment < command
// line, remembering where each value came from. Any bad input stops here with one
// message that names where it was written and the form expected.
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ini from 'ini';
import { InvalidValue, formatAddress, type Address } from './kinds.js';
import { EXIT } from '../ipc.js';
import { ENV_PREFIX, envName, schema, settingNames, type SettingName, type Settings } from './schema.js';

export type Source =
  | { kind: 'default' }
  | { kind: 'file'; file: string; line: number }
  | { kind: 'env'; name: string }
  | { kind: 'cli'; flag: string }
  /** Found in the instance's app directory (tsgunicorn --instance NAME). */
  | { kind: 'instance'; dir: string };

export interface ResolvedSettings {
  settings: Settings;
  sources: Record<SettingName, Source>;
}

/** A bad setting; the CLI prints `message` and exits with `exitCode` (Gunicorn's usage error). */
export class ConfigError extends Error {
  readonly exitCode = EXIT.CONFIG;
}

/** Raw values from the command line: strings as typed, arrays for repeatable flags, true for switches. */
export type CliValues = Partial<Record<SettingName, string | string[] | boolean>>;

export function describeSource(source: Source): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'file':
      return `${source.file}:${source.line}`;
    case 'env':
      return `environment ${source.name}`;
    case 'cli':
      return `command line ${source.flag}`;
    case 'instance':
      return `found in ${source.dir} (no app in the config)`;
  }
}

export function resolveSettings(cli: CliValues, env: NodeJS.ProcessEnv = process.env): ResolvedSettings {
  const settings = Object.fromEntries(settingNames.map((n) => [n, schema[n].default])) as Settings;
  const sources = Object.fromEntries(settingNames.map((n) => [n, { kind: 'default' }])) as Record<SettingName, Source>;
  const assign: Assign = (name, value, source) => {
    settings[name] = value;
    sources[name] = source;
  };

  const envValues = readEnv(env);
  const configFile = (typeof cli.config === 'string' ? cli.config : undefined) ?? envValues.get('config')?.text;
  if (configFile) {
    readConfigFile(configFile, assign);
    assign('config', path.resolve(configFile), cli.config ? { kind: 'cli', flag: '--config' } : { kind: 'env', name: envName('config') });
  }
  for (const [name, { text, source }] of envValues) {
    if (name === 'config') continue;
    assign(name, parseOrExplain(name, text, `environment ${source.name}`), source);
  }
  for (const name of settingNames) {
    const raw = cli[name];
    if (raw === undefined || name === 'config') continue;
    const flag = longFlag(name);
    // A switch (a boolean setting) arrives as true: its text is what the kind reads.
    const texts = typeof raw === 'boolean' ? [String(raw)] : Array.isArray(raw) ? raw : [raw];
    assign(name, parseEvery(name, texts, `option ${flag}`), { kind: 'cli', flag });
  }
  checkCombinations(settings, sources);
  return { settings, sources };
}

export const longFlag = (name: SettingName): string => /--[\w-]+/.exec(schema[name].flags)![0];

type Assign = <N extends SettingName>(name: N, value: Settings[N], source: Source) => void;

function parseOrExplain<N extends SettingName>(name: N, text: string, where: string): Settings[N] {
  try {
    return schema[name].kind.parse(text);
  } catch (err) {
    if (err instanceof InvalidValue) throw new ConfigError(`${where}: ${name}: ${err.message}`);
    throw err;
  }
}

/** One text, or several for a list setting given more than once (a repeated flag, `key[] =` lines): their items, in order. */
function parseEvery<N extends SettingName>(name: N, texts: string[], where: string): Settings[N] {
  const values = texts.map((text) => parseOrExplain(name, text, where));
  // Only list settings are given more than once (the callers check), so the items are what the setting holds.
  return texts.length === 1 ? values[0]! : (values.flat() as Settings[N]);
}

function readEnv(env: NodeJS.ProcessEnv): Map<SettingName, { text: string; source: { kind: 'env'; name: string } }> {
  const found = new Map<SettingName, { text: string; source: { kind: 'env'; name: string } }>();
  for (const [key, text] of Object.entries(env)) {
    if (!key.startsWith(ENV_PREFIX) || text === undefined) continue;
    const name = key.slice(ENV_PREFIX.length).toLowerCase();
    if (!isSettingName(name)) {
      throw new ConfigError(`environment ${key}: unknown setting${suggest(name, (n) => envName(n))}`);
    }
    found.set(name, { text, source: { kind: 'env', name: key } });
  }
  return found;
}

function readConfigFile(file: string, assign: Assign): void {
  const content = readSettingsText(file);
  const lines = content.split(/\r?\n/);
  const lineOf = (key: string): number => {
    const re = new RegExp(`^\\s*${key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\[\\])?\\s*(=|$)`);
    const i = lines.findIndex((l) => re.test(l));
    return i + 1;
  };
  checkRepeatedKeys(file, lines);
  const parsed = ini.parse(content) as Record<string, unknown>;
  for (const [key, raw] of Object.entries(parsed)) {
    const line = lineOf(key) || lines.findIndex((l) => l.trim() === `[${key}]`) + 1;
    const where = `${file}:${line}`;
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      throw new ConfigError(`${where}: section [${key}] is not used: write settings at the top of the file, without sections`);
    }
    if (!isSettingName(key) || schema[key].cliOnly) {
      throw new ConfigError(`${where}: unknown setting ${JSON.stringify(key)}${suggest(key, (n) => n)}`);
    }
    if (Array.isArray(raw) && !Array.isArray(schema[key].default)) {
      throw new ConfigError(`${where}: ${key} takes one value: write \`${key} = ${raw[0] ?? 'VALUE'}\`, not \`${key}[] = …\``);
    }
    // ini gives `true` for a bare key and an array for `key[] = ...` lines; of
    // repeated `key =` lines only the last, but each raw_env line adds variables.
    const texts = key === 'raw_env' ? everyValue(lines, key) : Array.isArray(raw) ? raw.map(String) : [raw === true ? 'true' : String(raw)];
    assign(key, parseEvery(key, texts, where), { kind: 'file', file, line });
  }
}

/** A config file of settings is a few kilobytes; a file past this is not one (a log, /dev/zero). */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * The config file's text. Opened without blocking and checked before reading: a
 * FIFO would wait for a writer forever and a device could be read without end.
 */
function readSettingsText(file: string): string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(err);
    throw new ConfigError(`config file ${file}: cannot read it (${why})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`config file ${file}: not a regular file: give the path of an ini file`);
    if (stat.size > MAX_CONFIG_BYTES)
      throw new ConfigError(
        `config file ${file}: ${stat.size} bytes, more than a config file holds (1 MiB at most): is it the right file?`,
      );
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** Settings written twice: ini keeps the last silently, so a forgotten line would override the one being edited. */
function checkRepeatedKeys(file: string, lines: string[]): void {
  const end = lines.findIndex((l) => /^\s*\[/.test(l));
  const firstLine = new Map<string, number>();
  lines.slice(0, end < 0 ? lines.length : end).forEach((l, i) => {
    const key = /^\s*([^=;#[\s]+)\s*=/.exec(l)?.[1];
    // raw_env lines add up, and `key[] =` lines are a list's items.
    if (!key || key === 'raw_env') return;
    const first = firstLine.get(key);
    if (first !== undefined)
      throw new ConfigError(`${file}:${i + 1}: ${key} is set again (first at line ${first}): keep one of the two lines`);
    firstLine.set(key, i + 1);
  });
}

/** The values of every `key =` and `key[] =` line (settings sit above any section), in order, each as ini reads it. */
function everyValue(lines: string[], key: string): string[] {
  const end = lines.findIndex((l) => /^\s*\[/.test(l));
  const re = new RegExp(`^\\s*${key}(\\[\\])?\\s*=`);
  return lines
    .slice(0, end < 0 ? lines.length : end)
    .filter((l) => re.test(l))
    .flatMap((l) =>
      Object.values(ini.parse(l) as Record<string, unknown>)
        .flat()
        .map(String),
    );
}

function checkCombinations(settings: Settings, sources: Record<SettingName, Source>): void {
  if (Boolean(settings.certfile) !== Boolean(settings.keyfile)) {
    const set = settings.certfile ? 'certfile' : 'keyfile';
    const missing = settings.certfile ? 'keyfile' : 'certfile';
    throw new ConfigError(`${describeSource(sources[set])}: ${set} is set but ${missing} is not: HTTPS needs both`);
  }
  // ALPN, which chooses h2, is part of TLS: cleartext HTTP/2 is http2_cleartext, for trusted proxies only.
  if (settings.http_protocols.includes('h2') && !settings.certfile) {
    throw new ConfigError(
      `${describeSource(sources.http_protocols)}: http_protocols includes h2 but certfile is not set: set certfile and keyfile, ` +
        'or, behind a proxy that speaks cleartext HTTP/2, set http2_cleartext = prior-knowledge instead',
    );
  }
  if (settings.health_check_path !== null && settings.certfile && !settings.http_protocols.includes('h1')) {
    throw new ConfigError(
      `${describeSource(sources.http_protocols)}: http_protocols is h2 only, but the health check (health_check_path) speaks HTTP/1.1: ` +
        'set http_protocols = h2,h1',
    );
  }
  if (settings.proxy_protocol !== 'off' && settings.proxy_allow_ips.length === 0) {
    throw new ConfigError(
      `${describeSource(sources.proxy_allow_ips)}: proxy_allow_ips is empty while proxy_protocol is ${settings.proxy_protocol}: ` +
        'every connection would be refused, the health check included: list the load balancers (or * for any)',
    );
  }
  settings.bind.forEach((a, i) => {
    const earlier = settings.bind.slice(0, i).find((b) => sameListener(a, b));
    if (earlier)
      throw new ConfigError(
        `${describeSource(sources.bind)}: bind: ${formatAddress(a)} and ${formatAddress(earlier)} are the same listening address: give each once`,
      );
  });
  const metrics = settings.metrics_bind;
  const taken = metrics && settings.bind.find((b) => sameListener(metrics, b));
  if (metrics && taken) {
    throw new ConfigError(
      `${describeSource(sources.metrics_bind)}: metrics_bind: ${formatAddress(metrics)} is also where the app listens (bind ${formatAddress(taken)}): give the metrics a port of their own`,
    );
  }
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** Two addresses that cannot both be bound: the same path or fd, or one TCP port on the same host or a wildcard. */
function sameListener(a: Address, b: Address): boolean {
  if (a.kind === 'tcp' && b.kind === 'tcp') {
    if (a.port === 0 || a.port !== b.port) return false;
    const [x, y] = [a.host.toLowerCase(), b.host.toLowerCase()];
    // `::` takes IPv4 too (dual stack); 0.0.0.0 takes every IPv4 address.
    return x === y || x === '::' || y === '::' || (WILDCARDS.has(x) && !y.includes(':')) || (WILDCARDS.has(y) && !x.includes(':'));
  }
  if (a.kind === 'unix' && b.kind === 'unix') return path.resolve(a.path) === path.resolve(b.path);
  return a.kind === 'fd' && b.kind === 'fd' && a.fd === b.fd;
}

const isSettingName = (name: string): name is SettingName => Object.hasOwn(schema, name);

function suggest(typed: string, show: (n: SettingName) => string): string {
  let best: SettingName | undefined;
  let bestDistance = Infinity;
  for (const name of settingNames) {
    const d = editDistance(typed.toLowerCase(), name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best && bestDistance <= Math.max(2, Math.floor(typed.length / 3)) ? ` (did you mean ${JSON.stringify(show(best))}?)` : '';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
