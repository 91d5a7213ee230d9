// One log destination: a file opened for appending, or the process's stdout or
// stderr. Writes go through a buffered stream so a slow disk or pipe never
// blocks the event loop; a batched output (the access log, a line per request)
// also joins the lines of up to 50 ms into one write, since a stream write per
// line costs a busy worker more than its requests do. It joins them as bytes,
// off V8's heap: strings joined with += would stay in the young generation for
// up to 50 ms, a chain of objects per line that every scavenge copies. A failing destination
// never throws into the caller: its lines are dropped, the fault is reported
// once (until a write succeeds again), and a file is reopened on the next
// reopen() or check(). A failed stdout/stderr stays off: its reader is gone and
// there is nothing to reopen.
import { createWriteStream, fstatSync, writeSync, type WriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isatty } from 'node:tty';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { sandboxHint } from '../systemd/sandbox.js';

// A batched output writes at most this long after a line, or once this much
// is waiting: a few writes a second where a busy worker logs thousands of lines.
const BATCH_MAX_DELAY_MS = 50;
const BATCH_BYTES = 64 * 1024;
// UTF-8 takes at most 3 bytes per UTF-16 code unit (a surrogate pair: 4 for 2).
const MAX_UTF8_PER_UNIT = 3;

export type Report = (level: 'info' | 'error', message: string) => void;

export class LogOutput {
  private stream: Writable | null = null;
  /** The open file's identity, to notice it being renamed or removed under us. */
  private identity: { dev: number; ino: number } | null = null;
  /** The fault was reported and no write has succeeded since. */
  private reported = false;
  /** The next write carries a callback that clears `reported` when it lands. */
  private confirmNext = false;
  private checking = false;
  private closed = false;
  /** Streams replaced by reopen() that are still flushing to the old file. */
  private readonly retiring = new Set<Writable>();
  /** Removes our 'error' listener from process.stdout/stderr, which outlive us. */
  private detachStdio: (() => void) | null = null;
  /** Lines not yet handed to the stream, UTF-8 (batched outputs only): `batch` up to `batchLength`. */
  private batch: Buffer | null = null;
  private batchLength = 0;
  private flushTimer: NodeJS.Timeout | null = null;

  /**
   * @param path a file path, or '-' for `stdioFd`
   * @param name what the report calls it ("access log")
   */
  constructor(
    readonly path: string,
    private readonly stdioFd: 1 | 2,
    private readonly name: string,
    private readonly report: Report,
    private readonly batched = false,
  ) {
    this.open();
    // A process leaving at once (a quick stop, a crash) still writes its pending lines.
    if (batched) process.once('exit', this.flushOnExit);
  }

  get isFile(): boolean {
    return this.path !== '-';
  }

  write(text: string): void {
    if (this.stream === null) return;
    if (!this.batched) {
      this.writeNow(text);
      return;
    }
    const room = (this.batch?.length ?? BATCH_BYTES) - this.batchLength;
    if (text.length * MAX_UTF8_PER_UNIT > room) {
      this.flush();
      // A line longer than a batch goes on its own.
      if (text.length * MAX_UTF8_PER_UNIT > BATCH_BYTES) {
        this.writeNow(text);
        return;
      }
    }
    this.batch ??= Buffer.allocUnsafe(BATCH_BYTES);
    this.batchLength += this.batch.write(text, this.batchLength, 'utf8');
    if (this.flushTimer === null) {
      this.flushTimer = setTimeout(this.flush, BATCH_MAX_DELAY_MS);
      this.flushTimer.unref();
    }
  }

  private readonly flush = (): void => {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const lines = this.takeBatch();
    if (lines !== null && this.stream !== null) this.writeNow(lines);
  };

  /** The batched lines, handed over with their buffer (the stream holds it until written); null when none. */
  private takeBatch(): Buffer | null {
    if (this.batch === null || this.batchLength === 0) return null;
    const lines = this.batch.subarray(0, this.batchLength);
    this.batch = null;
    this.batchLength = 0;
    return lines;
  }

  private readonly flushOnExit = (): void => {
    const fd = (this.stream as { fd?: unknown } | null)?.fd;
    if (typeof fd !== 'number') return;
    const lines = this.takeBatch();
    if (lines === null) return;
    try {
      writeSync(fd, lines);
    } catch {
      // Leaving: there is no one left to tell.
    }
  };

  private writeNow(text: string | Buffer): void {
    const stream = this.stream!;
    if (!this.confirmNext) {
      stream.write(text);
      return;
    }
    this.confirmNext = false;
    stream.write(text, (err) => {
      if (err || stream !== this.stream || !this.reported) return;
      this.reported = false;
      this.report('info', `The ${this.describe()} is writable again`);
    });
  }

  /** Opens the path afresh (logrotate's USR1); the old stream flushes to the old file and closes. */
  reopen(): void {
    if (this.closed || !this.isFile) return;
    this.flush();
    const old = this.stream;
    this.open();
    if (old !== null) {
      this.retiring.add(old);
      void finished(old.end())
        .catch(() => {})
        .finally(() => this.retiring.delete(old));
    }
  }

  /**
   * Off the hot path, about once a second: retries a failed destination, and
   * reopens a file whose path no longer names the file we have open (renamed
   * or removed by a logrotate that sent no USR1).
   */
  async check(): Promise<void> {
    if (this.closed || this.checking || !this.isFile) return;
    if (this.stream === null) {
      this.reopen();
      return;
    }
    const stream = this.stream;
    const identity = this.identity;
    if (identity === null) return;
    this.checking = true;
    try {
      const now = await stat(this.path).catch(() => null);
      if (stream !== this.stream || this.closed) return;
      if (now !== null && now.dev === identity.dev && now.ino === identity.ino) return;
      this.reopen();
      this.report('info', `The ${this.describe()} was moved or removed; reopened it`);
    } finally {
      this.checking = false;
    }
  }

  async close(): Promise<void> {
    this.flush();
    process.off('exit', this.flushOnExit);
    this.closed = true;
    const stream = this.stream;
    this.stream = null;
    const flushed = [...this.retiring].map((old) => finished(old).catch(() => {}));
    if (stream !== null && this.isFile) {
      flushed.push(finished(stream.end()).catch(() => {}));
    } else if (stream !== null) {
      // stdout/stderr stay open for whatever else writes to them: only flush.
      flushed.push(new Promise<void>((resolve) => stream.write('', () => resolve())));
    }
    await Promise.all(flushed);
    this.detachStdio?.();
  }

  private describe(): string {
    return this.isFile ? `${this.name} ${this.path}` : `${this.name} (${this.stdioFd === 1 ? 'stdout' : 'stderr'})`;
  }

  private open(): void {
    const stream = this.isFile ? createWriteStream(this.path, { flags: 'a' }) : stdioStream(this.stdioFd);
    this.stream = stream;
    this.identity = null;
    this.confirmNext = this.reported;
    // Every stream keeps a listener for life: an 'error' without one would crash the process.
    const onError = (err: Error): void => this.fail(stream, err);
    stream.on('error', onError);
    if (!this.isFile) this.detachStdio = () => stream.off('error', onError);
    if (this.isFile) {
      (stream as WriteStream).once('open', (fd: number) => {
        if (stream !== this.stream) return;
        try {
          const { dev, ino } = fstatSync(fd);
          this.identity = { dev, ino };
        } catch {
          // Without an identity the moved-file check stays off until the next open.
        }
      });
    }
  }

  private fail(stream: Writable, err: Error): void {
    if (stream !== this.stream) return;
    this.stream = null;
    if (this.reported) return;
    this.reported = true;
    const hint = this.isFile ? sandboxHint(this.path, err) : '';
    this.report('error', `Cannot write the ${this.describe()}: ${err.message}${hint}; dropping its lines until it works again`);
  }
}

/**
 * A non-blocking stream for fd 1 or 2. Regular files and devices such as
 * /dev/null get an fs stream (process.stdout writes them synchronously); pipes,
 * sockets and terminals go through process.stdout/stderr, whose libuv stream is
 * already asynchronous and which other writers to that fd share.
 */
function stdioStream(fd: 1 | 2): Writable {
  let viaFs = false;
  try {
    const s = fstatSync(fd);
    viaFs = s.isFile() || (s.isCharacterDevice() && !isatty(fd));
  } catch {
    // An fd we cannot stat is handed to process.stdout/stderr, which reports its errors.
  }
  if (viaFs) return createWriteStream('', { fd, autoClose: false });
  return fd === 1 ? process.stdout : process.stderr;
}
