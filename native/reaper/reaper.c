// The process-lifecycle calls Node lacks.
// reap(pid): waitpid(pid, WNOHANG) for one child the runtime does not wait for.
// As PID 1 in a container, processes orphaned by the app's child processes are
// reparented to the master, and Node (libuv) waits only for the children it
// spawned: without this they stay zombies (see src/master/reaper.ts).
// setParentDeathSignal(signal): prctl(PR_SET_PDEATHSIG, signal) (prctl(2)): the
// kernel sends it to this process when its parent dies, 0 turns it off. A booting
// worker dies with its master this way, even while importing the app blocks its
// event loop (see src/worker/master-death.ts).
#include <node_api.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

static napi_value Reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t pid = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "reap(pid): pid must be a positive integer");
    return NULL;
  }
  int status;
  napi_value reaped;
  napi_get_boolean(env, waitpid((pid_t)pid, &status, WNOHANG) == (pid_t)pid, &reaped);
  return reaped;
}

static napi_value SetParentDeathSignal(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t signal = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &signal) != napi_ok || signal < 0 || prctl(PR_SET_PDEATHSIG, signal) != 0) {
    napi_throw_error(env, NULL, "setParentDeathSignal(signal): not a signal number");
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "reap", NAPI_AUTO_LENGTH, Reap, NULL, &fn);
  napi_set_named_property(env, exports, "reap", fn);
  napi_create_function(env, "setParentDeathSignal", NAPI_AUTO_LENGTH, SetParentDeathSignal, NULL, &fn);
  napi_set_named_property(env, exports, "setParentDeathSignal", fn);
  return exports;
}
