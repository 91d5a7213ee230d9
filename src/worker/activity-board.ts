// Shared memory between a worker's main thread and its watchdog thread. The main
// thread writes what it is doing (no IPC, no allocation); the watchdog thread reads
// it even while the main thread's event loop is blocked, which is exactly when the
// master needs to know which request hung. native/watchdog/watchdog.c reads the
// same layout: change both together.
import type { Heartbeat, OldestRequest } from '../ipc.js';

const I32_TICK = 0; // event-loop ticks
const I32_SEQ = 1; // seqlock around the oldest-request fields: odd while writing
const I32_IN_FLIGHT = 2;
const I32_METHOD_LEN = 3;
const I32_URL_LEN = 4;
const F64_OLDEST_STARTED = 4; // byte offset 32: epoch ms, 0 = none
const METHOD_OFFSET = 40;
const METHOD_BYTES = 24;
const URL_OFFSET = METHOD_OFFSET + METHOD_BYTES;
const URL_BYTES = 400;

export const ACTIVITY_BOARD_BYTES = URL_OFFSET + URL_BYTES;

/** What the board holds: a heartbeat without the process-wide readings. */
export type Activity = Pick<Heartbeat, 'tick' | 'inFlight' | 'oldest'>;

const encoder = new TextEncoder();
// A leading U+FEFF is part of the URL, not a byte order mark.
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class ActivityBoard {
  private readonly i32: Int32Array;
  private readonly f64: Float64Array;
  private readonly method: Uint8Array;
  private readonly url: Uint8Array;
  // What the slots hold, so that the next oldest request on the same route
  // (the common case under load) costs no encoding.
  private methodText = '';
  private urlText = '';

  constructor(readonly buffer: SharedArrayBuffer = new SharedArrayBuffer(ACTIVITY_BOARD_BYTES)) {
    this.i32 = new Int32Array(buffer, 0, 5);
    this.f64 = new Float64Array(buffer, 0, 5);
    this.method = new Uint8Array(buffer, METHOD_OFFSET, METHOD_BYTES);
    this.url = new Uint8Array(buffer, URL_OFFSET, URL_BYTES);
  }

  tick(): void {
    Atomics.add(this.i32, I32_TICK, 1);
  }

  setInFlight(count: number): void {
    this.i32[I32_IN_FLIGHT] = count;
  }

  /**
   * Under load the oldest request changes with nearly every response, mostly to
   * one on the same route: then only its start time changes, in one aligned
   * 8-byte store (one instruction on x64 and arm64), which a reader sees whole,
   * either value matching the label. Only a new label takes the seqlock, whose
   * two atomic operations cost more than the rest of this bookkeeping.
   */
  setOldest(method: string, url: string, startedAt: number): void {
    if (method === this.methodText && url === this.urlText) this.f64[F64_OLDEST_STARTED] = startedAt;
    else this.relabel(method, url, startedAt);
  }

  // Apart from setOldest, which stays small enough to be inlined into every caller.
  private relabel(method: string, url: string, startedAt: number): void {
    Atomics.add(this.i32, I32_SEQ, 1);
    // A URL longer than the slot is cut; encodeInto never writes a partial character.
    if (method !== this.methodText) {
      this.i32[I32_METHOD_LEN] = encoder.encodeInto(method, this.method).written;
      this.methodText = method;
    }
    if (url !== this.urlText) {
      this.i32[I32_URL_LEN] = encoder.encodeInto(url, this.url).written;
      this.urlText = url;
    }
    this.f64[F64_OLDEST_STARTED] = startedAt;
    Atomics.add(this.i32, I32_SEQ, 1);
  }

  /** None in flight: the start time alone says it (0), in the same single store. */
  clearOldest(): void {
    this.f64[F64_OLDEST_STARTED] = 0;
  }

  /** For the watchdog thread (the fallback's; native/watchdog reads the memory itself). */
  read(): Activity {
    return {
      tick: Atomics.load(this.i32, I32_TICK),
      inFlight: this.i32[I32_IN_FLIGHT]!,
      oldest: this.readOldest(),
    };
  }

  /**
   * A consistent copy of the oldest-request fields (read between two equal even
   * sequence numbers), or null. The writer never yields mid-update, so a reader
   * finds it there only for moments; if on every attempt, it reports none this time.
   */
  private readOldest(): OldestRequest | null {
    for (let attempt = 0; attempt < 8; attempt++) {
      const before = Atomics.load(this.i32, I32_SEQ);
      if ((before & 1) === 1) continue; // odd, also once the counter has wrapped to negative
      const startedAt = this.f64[F64_OLDEST_STARTED]!;
      const label =
        startedAt === 0
          ? ''
          : `${decoder.decode(this.method.slice(0, this.i32[I32_METHOD_LEN]))} ${decoder.decode(this.url.slice(0, this.i32[I32_URL_LEN]))}`;
      if (Atomics.load(this.i32, I32_SEQ) === before) return startedAt === 0 ? null : { label, startedAt };
    }
    return null;
  }
}
