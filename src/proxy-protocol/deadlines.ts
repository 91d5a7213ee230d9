// The header_timeout deadlines of the connections still reading their PROXY
// header (and first request), behind one timer. A Node timer per connection,
// set and cleared within microseconds as the header arrives, turns the loop's
// timer ref on and off and can re-create the duration's list and its libuv
// timer each time, about 2 % of a Connection: close request. Every deadline is
// the same duration after its connection, so the queue is in arrival order and
// only its head needs the timer; removing an entry is O(1).

export interface Deadline {
  /** Drops the deadline (the connection got past it, or closed); again is a no-op. */
  cancel(): void;
}

class Entry implements Deadline {
  prev: Entry | null = null;
  next: Entry | null = null;
  queued = true;
  constructor(
    private readonly queue: DeadlineQueue,
    readonly at: number,
    readonly expire: () => void,
  ) {}

  cancel(): void {
    if (this.queued) this.queue.unlink(this);
  }
}

export class DeadlineQueue {
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly durationMs: number) {}

  /** Calls `expire` durationMs from now, unless cancelled first. */
  add(expire: () => void): Deadline {
    const entry = new Entry(this, performance.now() + this.durationMs, expire);
    if (this.tail === null) this.head = entry;
    else {
      this.tail.next = entry;
      entry.prev = this.tail;
    }
    this.tail = entry;
    if (this.timer === null) this.arm(this.durationMs);
    return entry;
  }

  unlink(entry: Entry): void {
    entry.queued = false;
    const { prev, next } = entry;
    if (prev === null) this.head = next;
    else prev.next = next;
    if (next === null) this.tail = prev;
    else next.prev = prev;
    entry.prev = entry.next = null;
  }

  private arm(ms: number): void {
    // Unreferenced: the connections it watches keep the worker's loop alive, not their deadlines.
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(ms))).unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    const now = performance.now();
    while (this.head !== null && this.head.at <= now) {
      const due = this.head;
      this.unlink(due);
      due.expire();
    }
    if (this.head !== null) this.arm(this.head.at - now);
  };
}
