// start(board, fd, intervalMs, orphanGraceMs): a worker's heartbeat from a plain
// thread. Like the node:worker_threads fallback (src/worker/watchdog/thread.ts),
// it keeps reporting while the app blocks the event loop, so the master sees the
// stalled tick and the hung request; unlike it, it costs no second V8 isolate.
//
// Every intervalMs it reads the ActivityBoard the main thread writes with Atomics
// (src/worker/activity-board.ts) and writes one line, the Heartbeat of src/ipc.ts,
// to fd, the JSON the fallback's JSON.stringify writes:
//   {"tick":T,"inFlight":N,"oldest":{"label":"GET /x","startedAt":MS}|null,"rss":BYTES,"cpu":US}
// When the write fails the master is gone: the main thread leaves on its own when
// its IPC channel closes, unless its loop is blocked, so after orphanGraceMs this
// thread kills the process.
//
// Threads, clocks and readings come from the runtime's libuv, as the runtime's
// own do: no newer glibc symbol than the oldest supported distribution has
// (glibc 2.34 moved pthread_* and gave them new versions).
#define _GNU_SOURCE
#include <node_api.h>
#include <uv.h>
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The board's layout, as activity-board.ts declares it (test/integration/watchdog.test.ts
// compares this thread's heartbeats with the fallback's on the same board).
#define I32_TICK 0
#define I32_SEQ 1  // seqlock around the oldest-request fields: odd while writing
#define I32_IN_FLIGHT 2
#define I32_METHOD_LEN 3
#define I32_URL_LEN 4
#define OLDEST_STARTED_OFFSET 32  // double: epoch ms, 0 = none
#define METHOD_OFFSET 40
#define METHOD_BYTES 24
#define URL_OFFSET (METHOD_OFFSET + METHOD_BYTES)
#define URL_BYTES 400
#define BOARD_BYTES (URL_OFFSET + URL_BYTES)

// One per process: the worker starts it once.
static struct {
  bool started;
  const uint8_t *board;
  int fd;
  int64_t interval_ms;
  int64_t orphan_grace_ms;
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;  // signalled to stop
  bool stopping;
} watchdog;

typedef struct {
  double started_at;
  int32_t method_len;
  int32_t url_len;
  uint8_t method[METHOD_BYTES];
  uint8_t url[URL_BYTES];
} Oldest;

static int32_t board_i32(int index, int order) { return __atomic_load_n((const int32_t *)watchdog.board + index, order); }

static int32_t clamp(int32_t length, int32_t max) { return length < 0 ? 0 : length > max ? max : length; }

// A consistent copy of the oldest-request fields (seqlock: copy between two equal
// even sequence numbers; a torn copy is thrown away), false when there is none.
// The writer never yields mid-update, so it is caught there only for moments.
static bool read_oldest(Oldest *out) {
  for (int attempt = 0; attempt < 8; attempt++) {
    int32_t before = board_i32(I32_SEQ, __ATOMIC_ACQUIRE);
    if (before & 1) continue;
    memcpy(&out->started_at, watchdog.board + OLDEST_STARTED_OFFSET, sizeof out->started_at);
    out->method_len = clamp(board_i32(I32_METHOD_LEN, __ATOMIC_RELAXED), METHOD_BYTES);
    out->url_len = clamp(board_i32(I32_URL_LEN, __ATOMIC_RELAXED), URL_BYTES);
    memcpy(out->method, watchdog.board + METHOD_OFFSET, (size_t)out->method_len);
    memcpy(out->url, watchdog.board + URL_OFFSET, (size_t)out->url_len);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (board_i32(I32_SEQ, __ATOMIC_RELAXED) == before) return out->started_at != 0;
  }
  return false;
}

// The two-character escapes JSON.stringify uses (RFC 8259 section 7).
static const char *short_escape(uint8_t c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
  }
}

// The bytes as a JSON string's contents, escaped as JSON.stringify escapes them
// (RFC 8259 section 7). They are UTF-8 from TextEncoder.encodeInto, which never
// writes a partial character, so only '"', '\' and control bytes need escaping.
static char *put_escaped(char *out, const uint8_t *bytes, int32_t length) {
  static const char hex[] = "0123456789abcdef";
  for (int32_t i = 0; i < length; i++) {
    uint8_t c = bytes[i];
    const char *escape = short_escape(c);
    if (escape) {
      memcpy(out, escape, 2);
      out += 2;
    } else if (c < 0x20) {
      out += sprintf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
    } else {
      *out++ = (char)c;
    }
  }
  return out;
}

// A double as JSON.stringify writes it: the shortest form that reads back as the
// same value (ECMA-262 Number::toString), null when not finite.
static char *put_number(char *out, double value) {
  if (!isfinite(value)) return out + sprintf(out, "null");
  int length = 0;
  for (int precision = 15; precision <= 17; precision++) {
    length = sprintf(out, "%.*g", precision, value);
    if (strtod(out, NULL) == value) break;
  }
  return out + length;
}

// As process.memoryUsage.rss() and process.cpuUsage() (user + system, in µs) read them.
static unsigned long long rss_bytes(void) {
  size_t rss = 0;
  return uv_resident_set_memory(&rss) == 0 ? rss : 0;
}

static unsigned long long cpu_us(void) {
  uv_rusage_t usage;
  if (uv_getrusage(&usage) != 0) return 0;
  return (unsigned long long)(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000ULL +
         (unsigned long long)(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Writes one heartbeat line; false when the fd no longer takes it.
static bool beat(void) {
  char line[256 + 6 * (METHOD_BYTES + 1 + URL_BYTES)];  // every label byte escaped as \u00XX at worst
  char *out = line;
  Oldest oldest;
  out += sprintf(out, "{\"tick\":%d,\"inFlight\":%d,\"oldest\":", board_i32(I32_TICK, __ATOMIC_RELAXED),
                 board_i32(I32_IN_FLIGHT, __ATOMIC_RELAXED));
  if (read_oldest(&oldest)) {
    out += sprintf(out, "{\"label\":\"");
    out = put_escaped(out, oldest.method, oldest.method_len);
    *out++ = ' ';
    out = put_escaped(out, oldest.url, oldest.url_len);
    out += sprintf(out, "\",\"startedAt\":");
    out = put_number(out, oldest.started_at);
    *out++ = '}';
  } else {
    out += sprintf(out, "null");
  }
  out += sprintf(out, ",\"rss\":%llu,\"cpu\":%llu}\n", rss_bytes(), cpu_us());
  for (const char *at = line; at < out;) {
    ssize_t written = write(watchdog.fd, at, (size_t)(out - at));
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return false;
    at += written;
  }
  return true;
}

// Waits ms, or until stop() (called with the lock held); true when stopped.
static bool wait_or_stop(int64_t ms) {
  uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000;
  for (uint64_t now; !watchdog.stopping && (now = uv_hrtime()) < until;) uv_cond_timedwait(&watchdog.wake, &watchdog.lock, until - now);
  return watchdog.stopping;
}

static void run(void *unused) {
  (void)unused;
  uv_thread_setname("tsg-watchdog");
  // Numbers with a '.', whatever locale the process set.
  locale_t c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
  if (c_locale != (locale_t)0) uselocale(c_locale);
  uv_mutex_lock(&watchdog.lock);
  while (!wait_or_stop(watchdog.interval_ms)) {
    uv_mutex_unlock(&watchdog.lock);
    bool written = beat();
    uv_mutex_lock(&watchdog.lock);
    if (!written) {
      if (!wait_or_stop(watchdog.orphan_grace_ms)) kill(getpid(), SIGKILL);
      break;
    }
  }
  uv_mutex_unlock(&watchdog.lock);
}

// When the environment is torn down (the process leaving without process.exit),
// before the board's memory is freed.
static void stop(void *unused) {
  (void)unused;
  uv_mutex_lock(&watchdog.lock);
  watchdog.stopping = true;
  uv_cond_signal(&watchdog.wake);
  uv_mutex_unlock(&watchdog.lock);
  uv_thread_join(&watchdog.thread);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  int32_t fd = -1;
  int64_t interval_ms = 0, orphan_grace_ms = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array ||
      length != BOARD_BYTES || napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0 ||
      napi_get_value_int64(env, argv[2], &interval_ms) != napi_ok || interval_ms <= 0 ||
      napi_get_value_int64(env, argv[3], &orphan_grace_ms) != napi_ok || orphan_grace_ms < 0) {
    napi_throw_type_error(env, NULL, "start(board, fd, intervalMs, orphanGraceMs): board must be a Uint8Array over the whole ActivityBoard");
    return NULL;
  }
  if (watchdog.started) return fail(env, "the watchdog runs already");
  // Keeps the board's memory alive while the thread reads it.
  napi_ref board;
  if (napi_create_reference(env, argv[0], 1, &board) != napi_ok) return fail(env, "cannot hold the board");
  if (uv_mutex_init(&watchdog.lock) != 0 || uv_cond_init(&watchdog.wake) != 0) {
    napi_delete_reference(env, board);
    return fail(env, "cannot create the watchdog's lock");
  }
  watchdog.board = data;
  watchdog.fd = fd;
  watchdog.interval_ms = interval_ms;
  watchdog.orphan_grace_ms = orphan_grace_ms;
  // Signals stay with the threads that handle them: the thread inherits a mask
  // that blocks them all (sigprocmask(2) sets the calling thread's mask).
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &previous);
  int error = uv_thread_create(&watchdog.thread, run, NULL);
  sigprocmask(SIG_SETMASK, &previous, NULL);
  if (error != 0) {
    napi_delete_reference(env, board);
    return fail(env, uv_strerror(error));
  }
  watchdog.started = true;
  napi_add_env_cleanup_hook(env, stop, NULL);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, Start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
