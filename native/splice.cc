// Splice relay engine. Each relay owns two socket fds (dup()s made here, on the JS thread, before the caller
// destroys its own sockets) and one pipe per direction; worker threads move bytes with splice(2) under
// edge-triggered epoll, so payload never reaches user space. A FIN on one side becomes shutdown(SHUT_WR) on the
// other; a reset or error on either side resets both. Completion goes back to JS through one
// ThreadSafeFunction; live byte counts are atomics that JS reads under a short registry lock.
#include "splice.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "errors.h"

namespace smesh {

namespace {

constexpr int kMaxWorkers = 8;
constexpr int kPipeSize = 256 * 1024;

enum class Outcome { kEof, kReset, kError, kAborted };

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kEof: return "eof";
    case Outcome::kReset: return "reset";
    case Outcome::kError: return "error";
    case Outcome::kAborted: return "aborted";
  }
  return "error";
}

// One direction: src → pipe → dst. `pending` holds bytes JS had already read from src before the handoff;
// they go to dst before anything spliced.
struct Direction {
  int src = -1;
  int dst = -1;
  int pipe_r = -1;
  int pipe_w = -1;
  size_t pipe_cap = 0;
  size_t in_pipe = 0;
  std::string pending;
  size_t pending_off = 0;
  bool src_eof = false;
  bool done = false;  // src at EOF, everything written, dst shut down for writing
};

struct Relay {
  uint64_t id = 0;
  int fd[2] = {-1, -1};  // a, b
  Direction dir[2];      // 0: a → b, 1: b → a
  std::atomic<uint64_t> bytes[2] = {{0}, {0}};
  std::atomic<bool> finished{false};
  int worker = 0;
};

struct Completion {
  uint64_t id;
  uint64_t a_to_b;
  uint64_t b_to_a;
  Outcome outcome;
  int side;  // 0 = a, 1 = b, -1 = none
  int err;
};

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

void CloseRelayFds(Relay& r) {
  for (int i = 0; i < 2; i++) {
    CloseFd(r.fd[i]);
    CloseFd(r.dir[i].pipe_r);
    CloseFd(r.dir[i].pipe_w);
  }
}

// Linger 0 makes close() send RST instead of FIN.
void ResetAndClose(int& fd) {
  if (fd < 0) return;
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  CloseFd(fd);
}

class Engine;

class Worker {
 public:
  Worker(Engine* engine, int index) : engine_(engine), index_(index) {}
  ~Worker() {
    CloseFd(epfd_);
    CloseFd(wakefd_);
  }

  void Start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) ThrowErrno("splice worker: epoll_create1", errno);
    wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) ThrowErrno("splice worker: eventfd", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kWakeTag;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) ThrowErrno("splice worker: epoll_ctl(eventfd)", errno);
    thread_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "smesh-splice");
      Run();
    });
  }

  void Add(std::shared_ptr<Relay> r) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      adds_.push_back(std::move(r));
    }
    Wake();
  }

  void Abort(uint64_t id) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      aborts_.push_back(id);
    }
    Wake();
  }

  void Stop() {
    stop_.store(true);
    Wake();
    if (thread_.joinable()) thread_.join();
    // Relays still open at teardown: reset them, nothing will read their completion.
    for (auto& [id, r] : relays_) {
      ResetAndClose(r->fd[0]);
      ResetAndClose(r->fd[1]);
      CloseRelayFds(*r);
    }
    relays_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& r : adds_) CloseRelayFds(*r);
    adds_.clear();
  }

 private:
  static constexpr uint64_t kWakeTag = ~0ULL;

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wakefd_, &one, sizeof(one));
    (void)n;
  }

  void Run();
  void TakeCommands();
  void Register(const std::shared_ptr<Relay>& r);
  void Service(Relay& r, uint32_t events, int side);
  // false when the relay failed (and was finished) during the pump.
  bool Pump(Relay& r, int d);
  void Fail(Relay& r, int side, int err);
  void Unregister(Relay& r);
  void Finish(Relay& r, Outcome outcome, int side, int err);

  Engine* engine_;
  int index_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::shared_ptr<Relay>> adds_;
  std::vector<uint64_t> aborts_;
  std::unordered_map<uint64_t, std::shared_ptr<Relay>> relays_;  // worker thread only
};

// Process-wide engine, bound to the first Node environment that uses it (the agent's main thread).
class Engine {
 public:
  explicit Engine(Napi::Env env, int workers) : env_(env) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "smesh-splice", 0, 1);
    tsfn_.Unref(env);
    for (int i = 0; i < workers; i++) workers_.push_back(std::make_unique<Worker>(this, i));
    for (auto& w : workers_) w->Start();
  }

  napi_env env() const { return env_; }

  uint64_t Start(std::shared_ptr<Relay> r, Napi::Promise::Deferred deferred) {
    const uint64_t id = next_id_++;
    r->id = id;
    r->worker = static_cast<int>(r->id % workers_.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_[r->id] = r;
    }
    pending_.emplace(r->id, std::move(deferred));
    if (pending_.size() == 1) tsfn_.Ref(Napi::Env(env_));
    workers_[r->worker]->Add(std::move(r));
    return id;
  }

  bool Abort(uint64_t id) {
    int worker;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(id);
      if (it == live_.end() || it->second->finished.load()) return false;
      worker = it->second->worker;
    }
    workers_[worker]->Abort(id);
    return true;
  }

  // [id, aToB, bToA] triples of every live relay.
  std::vector<double> Counters() {
    std::vector<double> out;
    std::lock_guard<std::mutex> lock(mu_);
    out.reserve(live_.size() * 3);
    for (auto& [id, r] : live_) {
      out.push_back(static_cast<double>(id));
      out.push_back(static_cast<double>(r->bytes[0].load(std::memory_order_relaxed)));
      out.push_back(static_cast<double>(r->bytes[1].load(std::memory_order_relaxed)));
    }
    return out;
  }

  size_t Active() const { return pending_.size(); }

  // Worker thread: the relay is over; its fds are closed already.
  void Complete(const Relay& r, Outcome outcome, int side, int err) {
    auto* c = new Completion{r.id, r.bytes[0].load(), r.bytes[1].load(), outcome, side, err};
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.erase(r.id);
    }
    napi_status status = tsfn_.NonBlockingCall(c, [](Napi::Env env, Napi::Function, Completion* c) {
      std::unique_ptr<Completion> owned(c);
      Engine* engine = Instance();
      if (engine == nullptr || env == nullptr) return;
      engine->Deliver(env, *owned);
    });
    if (status != napi_ok) delete c;  // environment is going away
  }

  void Shutdown() {
    for (auto& w : workers_) w->Stop();
    workers_.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      live_.clear();
    }
    pending_.clear();
    tsfn_.Release();
  }

  static Engine* Instance() { return instance_; }
  static void SetInstance(Engine* e) { instance_ = e; }

 private:
  void Deliver(Napi::Env env, const Completion& c) {
    auto it = pending_.find(c.id);
    if (it == pending_.end()) return;
    Napi::Promise::Deferred deferred = std::move(it->second);
    pending_.erase(it);
    if (pending_.empty()) tsfn_.Unref(env);
    Napi::Object result = Napi::Object::New(env);
    result.Set("aToB", Napi::Number::New(env, static_cast<double>(c.a_to_b)));
    result.Set("bToA", Napi::Number::New(env, static_cast<double>(c.b_to_a)));
    result.Set("outcome", Napi::String::New(env, OutcomeName(c.outcome)));
    if (c.side >= 0) result.Set("side", Napi::String::New(env, c.side == 0 ? "a" : "b"));
    if (c.err > 0) {
      result.Set("errno", Napi::Number::New(env, c.err));
      result.Set("code", Napi::String::New(env, NativeError("", c.err).code()));
    }
    deferred.Resolve(result);
  }

  static inline Engine* instance_ = nullptr;
  napi_env env_;
  Napi::ThreadSafeFunction tsfn_;
  std::vector<std::unique_ptr<Worker>> workers_;
  uint64_t next_id_ = 1;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<Relay>> live_;      // guarded by mu_
  std::unordered_map<uint64_t, Napi::Promise::Deferred> pending_;  // JS thread only
};

void Worker::Run() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stop_.load()) {
    int n = epoll_wait(epfd_, events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EBADF/EINVAL cannot happen with our own epoll fd; stop rather than spin
    }
    for (int i = 0; i < n; i++) {
      uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        ssize_t got = read(wakefd_, &v, sizeof(v));
        (void)got;
        TakeCommands();
        continue;
      }
      auto it = relays_.find(tag >> 1);
      if (it == relays_.end()) continue;  // finished earlier in this batch
      std::shared_ptr<Relay> keep = it->second;
      Service(*keep, events[i].events, static_cast<int>(tag & 1));
    }
  }
}

void Worker::TakeCommands() {
  std::vector<std::shared_ptr<Relay>> adds;
  std::vector<uint64_t> aborts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    adds.swap(adds_);
    aborts.swap(aborts_);
  }
  for (auto& r : adds) Register(r);
  for (uint64_t id : aborts) {
    auto it = relays_.find(id);
    if (it == relays_.end()) continue;
    std::shared_ptr<Relay> keep = it->second;
    Unregister(*keep);
    ResetAndClose(keep->fd[0]);
    ResetAndClose(keep->fd[1]);
    Finish(*keep, Outcome::kAborted, -1, 0);
  }
}

void Worker::Register(const std::shared_ptr<Relay>& r) {
  relays_[r->id] = r;
  for (int side = 0; side < 2; side++) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (r->id << 1) | static_cast<uint64_t>(side);
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, r->fd[side], &ev) < 0) {
      Fail(*r, side, errno);
      return;
    }
  }
  // Data (or a FIN) may have arrived before registration; edge-triggered epoll would not report it.
  if (!Pump(*r, 0)) return;
  if (!Pump(*r, 1)) return;
  if (r->dir[0].done && r->dir[1].done) Finish(*r, Outcome::kEof, -1, 0);
}

void Worker::Service(Relay& r, uint32_t events, int side) {
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(r.fd[side], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      Fail(r, side, err);
      return;
    }
  }
  // Readable: the direction reading from this side; writable: the one writing to it. Edge-triggered, so the
  // other direction has nothing new to do (its last pump stopped at EAGAIN on a fd that has not signalled).
  const uint32_t always = EPOLLHUP | EPOLLERR;
  if ((events & (EPOLLIN | EPOLLRDHUP | always)) && !Pump(r, side)) return;
  if ((events & (EPOLLOUT | always)) && !Pump(r, 1 - side)) return;
  if (r.dir[0].done && r.dir[1].done) Finish(r, Outcome::kEof, -1, 0);
}

bool Worker::Pump(Relay& r, int d) {
  Direction& dir = r.dir[d];
  const int src_side = d;
  const int dst_side = 1 - d;
  while (!dir.done) {
    bool progress = false;
    if (dir.pending_off < dir.pending.size()) {
      ssize_t n = send(dir.dst, dir.pending.data() + dir.pending_off, dir.pending.size() - dir.pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        dir.pending_off += static_cast<size_t>(n);
        r.bytes[d].fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        if (dir.pending_off == dir.pending.size()) std::string().swap(dir.pending), dir.pending_off = 0;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      Fail(r, dst_side, n < 0 ? errno : EIO);
      return false;
    }
    if (!dir.src_eof && dir.in_pipe < dir.pipe_cap) {
      ssize_t n = splice(dir.src, nullptr, dir.pipe_w, nullptr, dir.pipe_cap - dir.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        dir.in_pipe += static_cast<size_t>(n);
        progress = true;
      } else if (n == 0) {
        dir.src_eof = true;
        progress = true;
      } else if (errno == EINTR) {
        continue;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        Fail(r, src_side, errno);
        return false;
      }
    }
    if (dir.in_pipe > 0) {
      ssize_t n = splice(dir.pipe_r, nullptr, dir.dst, nullptr, dir.in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        dir.in_pipe -= static_cast<size_t>(n);
        r.bytes[d].fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        progress = true;
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        Fail(r, dst_side, errno);
        return false;
      }
    }
    if (dir.src_eof && dir.in_pipe == 0) {
      if (shutdown(dir.dst, SHUT_WR) < 0 && errno != ENOTCONN) {
        Fail(r, dst_side, errno);
        return false;
      }
      dir.done = true;
      // The pipe is no longer needed; release its pages now rather than at the end of the relay.
      CloseFd(dir.pipe_r);
      CloseFd(dir.pipe_w);
      return true;
    }
    if (!progress) return true;
  }
  return true;
}

void Worker::Unregister(Relay& r) {
  for (int i = 0; i < 2; i++) {
    if (r.fd[i] >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, r.fd[i], nullptr);
  }
}

void Worker::Fail(Relay& r, int side, int err) {
  Unregister(r);
  ResetAndClose(r.fd[0]);
  ResetAndClose(r.fd[1]);
  Outcome outcome = (err == ECONNRESET || err == EPIPE || err == ECONNABORTED) ? Outcome::kReset : Outcome::kError;
  Finish(r, outcome, side, err);
}

void Worker::Finish(Relay& r, Outcome outcome, int side, int err) {
  if (r.finished.exchange(true)) return;
  Unregister(r);
  CloseRelayFds(r);
  std::shared_ptr<Relay> keep = relays_[r.id];
  relays_.erase(r.id);
  engine_->Complete(r, outcome, side, err);
}

// --- JS surface ---

Engine& EngineFor(Napi::Env env, int workers = 1) {
  Engine* e = Engine::Instance();
  if (e != nullptr) {
    if (e->env() != static_cast<napi_env>(env)) throw Napi::Error::New(env, "the splice relay is bound to another Node environment (worker thread)");
    return *e;
  }
  e = new Engine(env, workers);
  Engine::SetInstance(e);
  env.AddCleanupHook([] {
    Engine* engine = Engine::Instance();
    if (engine == nullptr) return;
    Engine::SetInstance(nullptr);
    engine->Shutdown();
    delete engine;
  });
  return *e;
}

int FdArg(Napi::Value v, const char* what) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a socket fd number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 2147483648.0) || d != static_cast<double>(static_cast<int>(d)))
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a non-negative integer fd");
  int fd = static_cast<int>(d);
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
    throw Napi::TypeError::New(v.Env(), std::string(what) + " (" + std::to_string(fd) + ") is not an open socket");
  return fd;
}

std::string BytesArg(Napi::Value v, const char* what) {
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsBuffer()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a Buffer");
  auto b = v.As<Napi::Buffer<char>>();
  return std::string(b.Data(), b.Length());
}

// spliceStart(fdA, fdB, pendingAtoB?: Buffer, pendingBtoA?: Buffer) → {id, done: Promise<result>}
// fdA/fdB are dup()ed here; the caller must then stop using and destroy its own sockets.
Napi::Value SpliceStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "spliceStart(fdA, fdB, pendingAtoB?, pendingBtoA?) needs two fds");
  int fa = FdArg(info[0], "fdA");
  int fb = FdArg(info[1], "fdB");
  if (fa == fb) throw Napi::TypeError::New(env, "fdA and fdB must be different sockets");
  auto r = std::make_shared<Relay>();
  r->dir[0].pending = BytesArg(info[2], "pendingAtoB");
  r->dir[1].pending = BytesArg(info[3], "pendingBtoA");
  Engine& engine = EngineFor(env);
  auto fail = [&](const char* what) {
    int err = errno;
    CloseRelayFds(*r);
    Napi::Error e = Napi::Error::New(env, std::string("spliceStart: ") + what + ": " + std::strerror(err));
    e.Set("code", Napi::String::New(env, NativeError("", err).code()));
    e.Set("errno", Napi::Number::New(env, err));
    throw e;
  };
  r->fd[0] = fcntl(fa, F_DUPFD_CLOEXEC, 0);
  if (r->fd[0] < 0) fail("dup(fdA)");
  r->fd[1] = fcntl(fb, F_DUPFD_CLOEXEC, 0);
  if (r->fd[1] < 0) fail("dup(fdB)");
  for (int i = 0; i < 2; i++) {
    // O_NONBLOCK lives on the shared open file description; libuv set it already, make sure anyway.
    int fl = fcntl(r->fd[i], F_GETFL);
    if (fl < 0 || fcntl(r->fd[i], F_SETFL, fl | O_NONBLOCK) < 0) fail("fcntl(O_NONBLOCK)");
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) fail("pipe2");
    r->dir[i].pipe_r = p[0];
    r->dir[i].pipe_w = p[1];
    // More pipe slots than the default 16 let one splice move more small (MTU-sized) skbs; best effort (an
    // unprivileged user over pipe-user-pages-soft keeps the default).
    fcntl(p[1], F_SETPIPE_SZ, kPipeSize);
    int cap = fcntl(p[1], F_GETPIPE_SZ);
    r->dir[i].pipe_cap = cap > 0 ? static_cast<size_t>(cap) : 65536;
  }
  r->dir[0].src = r->fd[0];
  r->dir[0].dst = r->fd[1];
  r->dir[1].src = r->fd[1];
  r->dir[1].dst = r->fd[0];
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Promise promise = deferred.Promise();
  uint64_t id = engine.Start(std::move(r), std::move(deferred));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, static_cast<double>(id)));
  out.Set("done", promise);
  return out;
}

uint64_t IdArg(Napi::Value v) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), "relay id must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::TypeError::New(v.Env(), "relay id must be a positive integer");
  return static_cast<uint64_t>(d);
}

// spliceAbort(id) → boolean: resets both sockets; the relay's promise resolves with outcome 'aborted'.
Napi::Value SpliceAbort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "spliceAbort(id) needs a relay id");
  uint64_t id = IdArg(info[0]);
  Engine* e = Engine::Instance();
  return Napi::Boolean::New(env, e != nullptr && e->Abort(id));
}

// spliceCounters() → Float64Array of [id, aToB, bToA] triples, one per live relay.
Napi::Value SpliceCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Engine* e = Engine::Instance();
  std::vector<double> values = e ? e->Counters() : std::vector<double>();
  Napi::Float64Array out = Napi::Float64Array::New(env, values.size());
  if (!values.empty()) std::memcpy(out.Data(), values.data(), values.size() * sizeof(double));
  return out;
}

// spliceActive() → number of relays whose promise has not resolved yet.
Napi::Value SpliceActive(const Napi::CallbackInfo& info) {
  Engine* e = Engine::Instance();
  return Napi::Number::New(info.Env(), e ? static_cast<double>(e->Active()) : 0);
}

// spliceConfigure({threads}) → void; only before the first spliceStart.
Napi::Value SpliceConfigure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "spliceConfigure(options) needs an options object");
  Napi::Value t = info[0].As<Napi::Object>().Get("threads");
  if (!t.IsNumber()) throw Napi::TypeError::New(env, "options.threads must be an integer 1..8");
  double d = t.As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= kMaxWorkers) || d != static_cast<double>(static_cast<int>(d)))
    throw Napi::TypeError::New(env, "options.threads must be an integer 1..8");
  if (Engine::Instance() != nullptr) throw Napi::Error::New(env, "spliceConfigure: the splice relay is already running");
  EngineFor(env, static_cast<int>(d));
  return env.Undefined();
}

}  // namespace

void RegisterSplice(Napi::Env env, Napi::Object exports) {
  exports.Set("spliceStart", Napi::Function::New(env, SpliceStart, "spliceStart"));
  exports.Set("spliceAbort", Napi::Function::New(env, SpliceAbort, "spliceAbort"));
  exports.Set("spliceCounters", Napi::Function::New(env, SpliceCounters, "spliceCounters"));
  exports.Set("spliceActive", Napi::Function::New(env, SpliceActive, "spliceActive"));
  exports.Set("spliceConfigure", Napi::Function::New(env, SpliceConfigure, "spliceConfigure"));
}

}  // namespace smesh
