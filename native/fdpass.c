// Passing listening sockets between unrelated processes (process upgrade).
//
// Node has no public API for SCM_RIGHTS, so this addon does the few system calls
// the handover needs on descriptors it owns itself (an AF_UNIX SOCK_SEQPACKET
// socket, so one sendmsg is one message and nothing is ever read by libuv and
// lost). Every call is non-blocking; the only wait, for readability, runs on
// libuv's thread pool so the event loop keeps serving meanwhile.
//
// Errors are thrown as Error objects whose `code` is the errno name (EADDRINUSE,
// ENOENT, ...), as Node's own fs and net errors are.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

// more than any listener set Nyala has; a message with more is refused, not cut
#define MAX_FDS 32
#define MAX_MESSAGE 65536

#define CHECK(call)                                                         \
  do {                                                                      \
    if ((call) != napi_ok) {                                                \
      napi_throw_error(env, "ENAPI", "Node-API call failed: " #call);       \
      return NULL;                                                          \
    }                                                                       \
  } while (0)

static napi_value throw_errno(napi_env env, const char* syscall, int err) {
  char message[256];
  const char* name = uv_err_name(-err);
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall, strerror(err), name);
  napi_value code, msg, error;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, code, msg, &error);
  napi_value syscall_value;
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

static int get_int_arg(napi_env env, napi_value value, int32_t* out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) return 0;
  return napi_get_value_int32(env, value, out) == napi_ok;
}

static int get_fd_arg(napi_env env, napi_value value, int* fd) {
  int32_t v;
  if (!get_int_arg(env, value, &v) || v < 0) return 0;
  *fd = v;
  return 1;
}

static int get_path_arg(napi_env env, napi_value value, struct sockaddr_un* addr) {
  size_t len = 0;
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return 0;
  if (len == 0 || len >= sizeof addr->sun_path) return 0;
  return napi_get_value_string_utf8(env, value, addr->sun_path, sizeof addr->sun_path, &len) == napi_ok;
}

static napi_value make_int(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

// listen(path, backlog) -> fd. The socket file is made 0600 right after bind; a
// peer that connects in between is still checked by uid (SO_PEERCRED).
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un addr;
  int32_t backlog;
  if (argc < 2 || !get_path_arg(env, argv[0], &addr) || !get_int_arg(env, argv[1], &backlog)) {
    return throw_type(env, "listen(path, backlog): path must be a non-empty string shorter than 108 bytes");
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }
  if (chmod(addr.sun_path, 0600) < 0 || listen(fd, backlog) < 0) {
    int err = errno;
    close(fd);
    unlink(addr.sun_path);
    return throw_errno(env, "listen", err);
  }
  return make_int(env, fd);
}

// connect(path) -> fd
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un addr;
  if (argc < 1 || !get_path_arg(env, argv[0], &addr)) {
    return throw_type(env, "connect(path): path must be a non-empty string shorter than 108 bytes");
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  if (connect(fd, (struct sockaddr*)&addr, sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "connect", err);
  }
  return make_int(env, fd);
}

// accept(fd) -> fd, or -1 when nothing is waiting
static napi_value js_accept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "accept(fd)");
  int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) {
      return make_int(env, -1);
    }
    return throw_errno(env, "accept", errno);
  }
  return make_int(env, conn);
}

// close(fd)
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "close(fd)");
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "close", errno);
  return NULL;
}

// send(fd, data: Buffer, fds: number[]) -> bytes sent. One message; fds as SCM_RIGHTS.
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  void* data = NULL;
  size_t length = 0;
  bool is_buffer = false, is_array = false;
  if (argc < 3 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "send(fd, data, fds)");
  CHECK(napi_is_buffer(env, argv[1], &is_buffer));
  CHECK(napi_is_array(env, argv[2], &is_array));
  if (!is_buffer || !is_array) return throw_type(env, "send(fd, data, fds): data must be a Buffer, fds an array");
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  uint32_t count = 0;
  CHECK(napi_get_array_length(env, argv[2], &count));
  if (count > MAX_FDS) return throw_type(env, "send: too many descriptors");
  if (length == 0 || length > MAX_MESSAGE) return throw_type(env, "send: message must be 1 to 65536 bytes");
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    CHECK(napi_get_element(env, argv[2], i, &item));
    if (!get_fd_arg(env, item, &fds[i])) return throw_type(env, "send: descriptors must be integers >= 0");
  }
  struct iovec iov = {.iov_base = data, .iov_len = length};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  if (count > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * count);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * count);
  }
  ssize_t sent;
  do {
    sent = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_errno(env, "sendmsg", errno);
  return make_int(env, sent);
}

// recv(fd) -> { data: Buffer, fds: number[], truncated: boolean } or null when nothing is
// waiting. data is empty at end of stream. Received descriptors are close-on-exec
// (MSG_CMSG_CLOEXEC), so a module's child process never inherits a listener.
static napi_value js_recv(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "recv(fd)");
  char* data = malloc(MAX_MESSAGE);
  if (!data) return throw_errno(env, "malloc", ENOMEM);
  union {
    char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov = {.iov_base = data, .iov_len = MAX_MESSAGE};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  ssize_t got;
  do {
    got = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    int err = errno;
    free(data);
    if (err == EAGAIN || err == EWOULDBLOCK) {
      napi_value null_value;
      napi_get_null(env, &null_value);
      return null_value;
    }
    return throw_errno(env, "recvmsg", err);
  }
  napi_value result, buffer, fd_list;
  void* copy = NULL;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_create_buffer_copy(env, (size_t)got, data, &copy, &buffer));
  free(data);
  CHECK(napi_create_array(env, &fd_list));
  uint32_t n = 0;
  // every descriptor the kernel installed is reported, whatever the message says,
  // so the caller can close the ones it refuses
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int* list = (int*)CMSG_DATA(c);
    for (size_t i = 0; i < k; i++) {
      int received;
      memcpy(&received, &list[i], sizeof received);
      CHECK(napi_set_element(env, fd_list, n++, make_int(env, received)));
    }
  }
  napi_value truncated;
  CHECK(napi_get_boolean(env, (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0, &truncated));
  CHECK(napi_set_named_property(env, result, "data", buffer));
  CHECK(napi_set_named_property(env, result, "fds", fd_list));
  CHECK(napi_set_named_property(env, result, "truncated", truncated));
  return result;
}

// peerCredentials(fd) -> { pid, uid, gid } of the process at the other end (SO_PEERCRED)
static napi_value js_peer_credentials(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "peerCredentials(fd)");
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    return throw_errno(env, "getsockopt(SO_PEERCRED)", errno);
  }
  napi_value result;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "pid", make_int(env, cred.pid)));
  CHECK(napi_set_named_property(env, result, "uid", make_int(env, cred.uid)));
  CHECK(napi_set_named_property(env, result, "gid", make_int(env, cred.gid)));
  return result;
}

static napi_value make_string(napi_env env, const char* s) {
  napi_value out;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

// describe(fd) -> { kind, listening, type, family }: what a received descriptor really
// is, so a peer cannot pass a file or a connected socket off as a listener
static napi_value js_describe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  if (argc < 1 || !get_fd_arg(env, argv[0], &fd)) return throw_type(env, "describe(fd)");
  struct stat st;
  if (fstat(fd, &st) < 0) return throw_errno(env, "fstat", errno);
  napi_value result;
  CHECK(napi_create_object(env, &result));
  const char* kind = S_ISSOCK(st.st_mode) ? "socket" : S_ISREG(st.st_mode) ? "file" : S_ISFIFO(st.st_mode) ? "fifo" : "other";
  CHECK(napi_set_named_property(env, result, "kind", make_string(env, kind)));
  int listening = 0, type = 0, family = 0;
  if (S_ISSOCK(st.st_mode)) {
    socklen_t len = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0) listening = 0;
    len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) type = 0;
    len = sizeof family;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0) family = 0;
  }
  napi_value listening_value;
  CHECK(napi_get_boolean(env, listening != 0, &listening_value));
  CHECK(napi_set_named_property(env, result, "listening", listening_value));
  const char* type_name = type == SOCK_STREAM ? "stream" : type == SOCK_DGRAM ? "dgram" : type == SOCK_SEQPACKET ? "seqpacket" : type == 0 ? "none" : "other";
  CHECK(napi_set_named_property(env, result, "type", make_string(env, type_name)));
  const char* family_name = family == AF_INET ? "inet" : family == AF_INET6 ? "inet6" : family == AF_UNIX ? "unix" : family == 0 ? "none" : "other";
  CHECK(napi_set_named_property(env, result, "family", make_string(env, family_name)));
  return result;
}

// waitReadable(fd, timeoutMs) -> Promise<boolean>: poll on the thread pool
typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int timeout_ms;
  int ready;
  int err;
} wait_job;

static void wait_execute(napi_env env, void* data) {
  (void)env;
  wait_job* job = data;
  struct pollfd p = {.fd = job->fd, .events = POLLIN, .revents = 0};
  int r;
  do {
    r = poll(&p, 1, job->timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r < 0) job->err = errno;
  else job->ready = r > 0;
}

static void wait_complete(napi_env env, napi_status status, void* data) {
  wait_job* job = data;
  if (status != napi_ok || job->err != 0) {
    napi_value code, msg, error;
    const char* name = uv_err_name(-(job->err ? job->err : EIO));
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
    napi_create_string_utf8(env, job->err ? strerror(job->err) : "wait cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, code, msg, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else {
    napi_value ready;
    napi_get_boolean(env, job->ready != 0, &ready);
    napi_resolve_deferred(env, job->deferred, ready);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_wait_readable(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int fd;
  int32_t timeout;
  if (argc < 2 || !get_fd_arg(env, argv[0], &fd) || !get_int_arg(env, argv[1], &timeout) || timeout < 0) {
    return throw_type(env, "waitReadable(fd, timeoutMs)");
  }
  wait_job* job = calloc(1, sizeof *job);
  if (!job) return throw_errno(env, "calloc", ENOMEM);
  job->fd = fd;
  job->timeout_ms = timeout;
  napi_value promise, name;
  CHECK(napi_create_promise(env, &job->deferred, &promise));
  CHECK(napi_create_string_utf8(env, "nyala:waitReadable", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_async_work(env, NULL, name, wait_execute, wait_complete, job, &job->work));
  CHECK(napi_queue_async_work(env, job->work));
  return promise;
}

// The watchdog (src/supervise/watchdog-worker.ts) ends a process whose event loop is stuck from
// its own thread, where process.exit ends only that thread: _exit ends the whole process with
// the exit code at once. Nothing else can run meanwhile: the main thread is stuck, and its
// exit handlers would wait for it. The caller has written its log line with a synchronous write.
static napi_value js_exit_now(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || !get_int_arg(env, argv[0], &code)) return throw_type(env, "exitNow(code): code must be a number");
  _exit(code & 0xff);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"accept", NULL, js_accept, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"recv", NULL, js_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerCredentials", NULL, js_peer_credentials, NULL, NULL, NULL, napi_enumerable, NULL},
      {"describe", NULL, js_describe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"waitReadable", NULL, js_wait_readable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"exitNow", NULL, js_exit_now, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
