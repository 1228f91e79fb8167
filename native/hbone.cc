// N-API surface of the native HBONE engine: argument checks, the engine-wide registry and round-robin placement on
// workers, and one ThreadSafeFunction that carries batched events (open results, stream requests, stream results,
// session events) back to the JS thread. TypeScript maps ids to promises (agent/native/hbone.ts).
#include "hbone.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "errors.h"
#include "engine_host.h"
#include "event_batch.h"
#include "hbone_engine.h"

namespace smesh {

namespace {

using hbone::Event;
using hbone::EventType;
using hbone::Options;
using hbone::StreamCounters;
using hbone::TlsStore;
using hbone::Worker;

constexpr int kMaxWorkers = 16;

class EngineImpl;

// JS-thread state: options until the engine starts, the TLS material (usable before it starts), the handler.
struct Globals {
  Options options;
  TlsStore* tls = new TlsStore();  // lives for the process: workers may still hold it during teardown
  EngineImpl* engine = nullptr;
  Napi::FunctionReference callback;
  bool want_ref = false;
};

Globals& G() {
  static Globals* g = new Globals();
  return *g;
}

class EngineImpl : public EngineHost<EngineImpl, hbone::Engine, Worker, Event> {
 public:
  EngineImpl(Napi::Env env, const Options& options, TlsStore* tls, Napi::Function callback)
      : EngineHost(env, "smesh-hbone", options.workers, callback, options, tls) {}

  static EngineImpl* Current() { return G().engine; }
  static void Release(Event& ev) { (void)ev; }

  static Napi::Object ToJs(Napi::Env env, const Event& ev) {
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
    auto str = [&](const char* k, const std::string& v) { o.Set(k, Napi::String::New(env, v)); };
    num("id", static_cast<double>(ev.id));
    switch (ev.type) {
      case EventType::kOpen:
        str("t", "open");
        o.Set("ok", Napi::Boolean::New(env, ev.ok));
        if (!ev.ok) {
          str("kind", ev.kind);
          str("message", ev.message);
          if (ev.status) num("status", ev.status);
        }
        if (ev.has_peer_id) str("peerId", ev.peer_id);
        break;
      case EventType::kStream: {
        str("t", "stream");
        num("session", static_cast<double>(ev.session));
        if (ev.has_peer_id) str("peerId", ev.peer_id);
        str("authority", ev.authority);
        Napi::Array h = Napi::Array::New(env, ev.headers.size());
        for (size_t i = 0; i < ev.headers.size(); i++) h.Set(static_cast<uint32_t>(i), Napi::String::New(env, ev.headers[i]));
        o.Set("headers", h);
        str("localAddress", ev.local_address);
        num("localPort", ev.local_port);
        str("remoteAddress", ev.remote_address);
        num("remotePort", ev.remote_port);
        break;
      }
      case EventType::kDone:
      case EventType::kEnded:
        str("t", ev.type == EventType::kDone ? "done" : "ended");
        num("sent", static_cast<double>(ev.sent));
        num("received", static_cast<double>(ev.received));
        str("outcome", ev.outcome);
        if (!ev.side.empty()) str("side", ev.side);
        if (ev.h2_code >= 0) num("h2Code", static_cast<double>(ev.h2_code));
        if (ev.err > 0) num("errno", ev.err);
        break;
      case EventType::kSession:
        str("t", "session");
        str("type", ev.session_type);
        str("direction", ev.inbound ? "inbound" : "outbound");
        str("reason", ev.reason);
        str("remote", ev.remote);
        if (!ev.detail.empty()) str("detail", ev.detail);
        break;
    }
    return o;
  }
};

EngineImpl& Running(Napi::Env env) {
  Globals& g = G();
  if (g.engine != nullptr) {
    if (g.engine->env() != static_cast<napi_env>(env)) throw Napi::Error::New(env, "the HBONE engine is bound to another Node environment (worker thread)");
    return *g.engine;
  }
  if (g.callback.IsEmpty()) throw Napi::Error::New(env, "hboneInit(callback) must be called before the HBONE engine is used");
  g.engine = new EngineImpl(env, g.options, g.tls, g.callback.Value());
  if (g.want_ref) g.engine->SetRef(true);
  env.AddCleanupHook([] {
    Globals& gg = G();
    EngineImpl* e = gg.engine;
    if (e == nullptr) return;
    e->Shutdown();
    gg.engine = nullptr;
    gg.callback.Reset();
    delete e;
  });
  return *g.engine;
}

std::string StringArg(const Napi::Value& v, const char* what) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

double IntegerArg(const Napi::Value& v, const char* what, double lo, double hi) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::TypeError::New(
        v.Env(), std::string(what) + " must be an integer " + std::to_string(static_cast<int64_t>(lo)) + ".." + std::to_string(static_cast<int64_t>(hi)));
  return d;
}

uint64_t IdArg(const Napi::Value& v) { return static_cast<uint64_t>(IntegerArg(v, "stream id", 1, 9007199254740991.0)); }

int SocketFdArg(const Napi::Value& v, const char* what) {
  int fd = static_cast<int>(IntegerArg(v, what, 0, 2147483647.0));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
    throw Napi::TypeError::New(v.Env(), std::string(what) + " (" + std::to_string(fd) + ") is not an open socket");
  return fd;
}

[[noreturn]] void ThrowErrnoJs(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, NativeError("", err).code()));
  e.Set("errno", Napi::Number::New(env, err));
  throw e;
}

int DupNonBlocking(Napi::Env env, int fd) {
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) ThrowErrnoJs(env, "dup", errno);
  int fl = fcntl(d, F_GETFL);
  if (fl < 0 || fcntl(d, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(d);
    ThrowErrnoJs(env, "fcntl(O_NONBLOCK)", err);
  }
  return d;
}

void AddressOf(const sockaddr_storage& ss, std::string* ip, int* port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    *port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    *port = ntohs(a->sin6_port);
  }
  *ip = buf;
}

// hboneInit(callback: (events: object[]) => void): installs the one event callback (before any other use).
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "hboneInit(callback) needs a function");
  Globals& g = G();
  if (g.engine != nullptr) throw Napi::Error::New(env, "hboneInit: the HBONE engine is already running");
  g.callback = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

// hboneConfigure(options): before the engine starts only.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "hboneConfigure(options) needs an options object");
  Globals& g = G();
  if (g.engine != nullptr) throw Napi::Error::New(env, "hboneConfigure: the HBONE engine is already running; configure before the first use");
  Napi::Object o = info[0].As<Napi::Object>();
  Options opts = g.options;
  auto opt = [&](const char* key, double lo, double hi, auto setter) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    setter(IntegerArg(v, (std::string("options.") + key).c_str(), lo, hi));
  };
  opt("workers", 1, kMaxWorkers, [&](double d) { opts.workers = static_cast<int>(d); });
  opt("streamWindow", 65535, 2147483647.0, [&](double d) { opts.stream_window = static_cast<int32_t>(d); });
  opt("connectionWindow", 65535, 2147483647.0, [&](double d) { opts.connection_window = static_cast<int32_t>(d); });
  opt("maxConcurrentStreams", 1, 1000000, [&](double d) { opts.max_concurrent_streams = static_cast<uint32_t>(d); });
  opt("idleTimeoutMs", 1, 86400000.0 * 7, [&](double d) { opts.idle_timeout_ms = static_cast<int64_t>(d); });
  opt("connectTimeoutMs", 1, 3600000, [&](double d) { opts.connect_timeout_ms = static_cast<int64_t>(d); });
  opt("maxEarlyResets", 0, 1000000, [&](double d) { opts.max_early_resets = static_cast<uint32_t>(d); });
  opt("livenessCheckMs", 10, 3600000, [&](double d) { opts.liveness_check_ms = static_cast<int64_t>(d); });
  opt("turnBytes", 16384, 16777216, [&](double d) { opts.turn_bytes = static_cast<uint64_t>(d); });
  opt("workerNice", -20, 19, [&](double d) { opts.worker_nice = static_cast<int>(d); });
  Napi::Value fair = o.Get("fairShare");
  if (!fair.IsUndefined()) {
    if (!fair.IsBoolean()) throw Napi::TypeError::New(env, "options.fairShare must be a boolean");
    opts.fair_share = fair.As<Napi::Boolean>().Value();
  }
  g.options = opts;
  return env.Undefined();
}

Napi::Value SetIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3) throw Napi::TypeError::New(env, "hboneSetIdentity(id, chainPem, keyPem)");
  std::string id = StringArg(info[0], "id");
  std::string chain = StringArg(info[1], "chainPem");
  std::string key = StringArg(info[2], "keyPem");
  try {
    G().tls->SetIdentity(id, chain, key);
  } catch (const NativeError& e) {
    throw Napi::Error::New(env, e.what());
  }
  // Pooled outbound sessions presenting the old certificate take no new stream.
  if (G().engine != nullptr)
    for (auto& w : G().engine->workers()) w->RetireSource(id);
  return env.Undefined();
}

Napi::Value RemoveIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string id = StringArg(info[0], "id");
  bool removed = G().tls->RemoveIdentity(id);
  if (removed && G().engine != nullptr)
    for (auto& w : G().engine->workers()) w->RetireSource(id);
  return Napi::Boolean::New(env, removed);
}

Napi::Value SetTrustAnchors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string pem = StringArg(info[0], "pem");
  try {
    G().tls->SetTrustAnchors(pem);
  } catch (const NativeError& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

// hboneOpen(sourceId, host, port, acceptIds: string[], authority, headers: string[] (name, value, ...)) → stream id.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6) throw Napi::TypeError::New(env, "hboneOpen(sourceId, host, port, acceptIds, authority, headers)");
  hbone::OpenCommand cmd;
  cmd.source_id = StringArg(info[0], "sourceId");
  cmd.host = StringArg(info[1], "host");
  cmd.port = static_cast<int>(IntegerArg(info[2], "port", 1, 65535));
  if (!info[3].IsArray()) throw Napi::TypeError::New(env, "acceptIds must be an array of strings");
  Napi::Array ids = info[3].As<Napi::Array>();
  for (uint32_t i = 0; i < ids.Length(); i++) cmd.accept_ids.push_back(StringArg(ids.Get(i), "acceptIds[i]"));
  if (cmd.accept_ids.empty()) throw Napi::TypeError::New(env, "acceptIds must name at least one server identity");
  cmd.authority = StringArg(info[4], "authority");
  if (!info[5].IsArray()) throw Napi::TypeError::New(env, "headers must be a flat array of strings");
  Napi::Array h = info[5].As<Napi::Array>();
  if (h.Length() % 2 != 0) throw Napi::TypeError::New(env, "headers must hold name, value pairs");
  for (uint32_t i = 0; i + 1 < h.Length(); i += 2) cmd.headers.emplace_back(StringArg(h.Get(i), "header name"), StringArg(h.Get(i + 1), "header value"));
  if (info.Length() > 6 && !info[6].IsUndefined() && !info[6].IsNull()) cmd.dscp = static_cast<int>(IntegerArg(info[6], "dscp", 0, 63));
  EngineImpl& e = Running(env);
  cmd.id = e.NextId();
  cmd.start_ms = hbone::NowMs();
  auto counters = std::make_shared<StreamCounters>();
  counters->worker = e.NextWorker();
  counters->inbound = false;
  e.Register(cmd.id, counters);
  uint64_t id = cmd.id;
  e.worker(counters->worker).Open(std::move(cmd));
  return Napi::Number::New(env, static_cast<double>(id));
}

// hboneServe(fd, certId) → session id. The fd is dup'd; the caller destroys its own socket.
Napi::Value Serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "hboneServe(fd, certId)");
  int fd = SocketFdArg(info[0], "fd");
  std::string cert_id = StringArg(info[1], "certId");
  auto identity = G().tls->Identity(cert_id);
  if (!identity) {
    Napi::Error err = Napi::Error::New(env, "no certificate for identity " + cert_id + "; setIdentity before serve");
    err.Set("code", Napi::String::New(env, "SMESH_ERR_IDENTITY"));
    throw err;
  }
  EngineImpl& e = Running(env);
  hbone::ServeCommand cmd;
  cmd.identity = std::move(identity);
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) AddressOf(ss, &cmd.local_address, &cmd.local_port);
  sl = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0)
    AddressOf(ss, &cmd.remote_address, &cmd.remote_port);
  else
    ThrowErrnoJs(env, "hboneServe: getpeername", errno);
  cmd.fd = DupNonBlocking(env, fd);
  int one = 1;
  setsockopt(cmd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  cmd.session = e.NextId();
  uint64_t id = cmd.session;
  e.worker(e.NextWorker()).Serve(std::move(cmd));
  return Napi::Number::New(env, static_cast<double>(id));
}

Napi::Value Respond(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = IdArg(info[0]);
  int status = static_cast<int>(IntegerArg(info[1], "status", 100, 599));
  if (status == 200) throw Napi::TypeError::New(env, "respond() answers refusals; a 200 is sent by attach()");
  EngineImpl* e = G().engine;
  auto c = e ? e->Lookup(id) : nullptr;
  if (!c || !c->inbound || c->attached.load()) return Napi::Boolean::New(env, false);
  e->worker(c->worker).Respond(id, status);
  return Napi::Boolean::New(env, true);
}

// One {key, bytesPerSecond} or an array of them (several rules limit that way: all are enforced); null when absent.
// Buckets are looked up (or made) in the running engine's registry, shared by every stream naming the key.
std::shared_ptr<hbone::qos::ByteLimits> LimitsArg(Napi::Env env, const Napi::Value& l, const char* what, int64_t now) {
  if (l.IsUndefined() || l.IsNull()) return nullptr;
  std::vector<Napi::Value> items;
  if (l.IsArray()) {
    Napi::Array a = l.As<Napi::Array>();
    if (a.Length() == 0 || a.Length() > 16) throw Napi::TypeError::New(env, std::string(what) + " must list 1-16 limits");
    for (uint32_t i = 0; i < a.Length(); i++) items.push_back(a.Get(i));
  } else {
    items.push_back(l);
  }
  std::vector<std::shared_ptr<hbone::qos::ByteBucket>> buckets;
  for (const Napi::Value& item : items) {
    if (!item.IsObject()) throw Napi::TypeError::New(env, std::string(what) + " must be {key, bytesPerSecond} or an array of them");
    Napi::Object lo = item.As<Napi::Object>();
    std::string key = StringArg(lo.Get("key"), (std::string(what) + ".key").c_str());
    auto rate = static_cast<uint64_t>(
        IntegerArg(lo.Get("bytesPerSecond"), (std::string(what) + ".bytesPerSecond").c_str(), 1, static_cast<double>(hbone::qos::kMaxRateBytes)));
    buckets.push_back(G().engine->buckets().Get(key, rate, now));
  }
  return std::make_shared<hbone::qos::ByteLimits>(std::move(buckets));
}

// hboneChargeLimits(limits, bytes) → ns to wait before a whole chunk may move again (0: go on). For relays that run
// in JavaScript: they charge the same buckets as the engine's streams, so a rule's limit holds across both.
Napi::Value ChargeLimits(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "hboneChargeLimits(limits, bytes)");
  Running(env);
  int64_t now = hbone::NowNs();
  auto lim = LimitsArg(env, info[0], "limits", now);
  if (!lim) throw Napi::TypeError::New(env, "limits must be {key, bytesPerSecond} or an array of them");
  auto n = static_cast<uint64_t>(IntegerArg(info[1], "bytes", 0, 1e15));
  lim->Consume(n, now);
  uint64_t min = std::min<uint64_t>(16384, lim->burst());
  if (lim->Available(now) >= min) return Napi::Number::New(env, 0);
  lim->NoteThrottle(0, min, now);
  return Napi::Number::New(env, static_cast<double>(lim->WaitNs(min, now)));
}

// The optional QoS argument of attach/attachPair: {flow, priority: 0|1|2, weight, dscp?, send?: {key,
// bytesPerSecond} | [{key, bytesPerSecond}, ...], receive?: likewise}. Buckets are looked up (or made) here, on the JS thread.
hbone::StreamQos QosArg(Napi::Env env, const Napi::Value& v) {
  hbone::StreamQos q;
  if (v.IsUndefined() || v.IsNull()) return q;
  if (!v.IsObject()) throw Napi::TypeError::New(env, "qos must be an object");
  Napi::Object o = v.As<Napi::Object>();
  q.flow = StringArg(o.Get("flow"), "qos.flow");
  Napi::Value p = o.Get("priority");
  if (!p.IsUndefined()) q.priority = static_cast<hbone::qos::Priority>(static_cast<int>(IntegerArg(p, "qos.priority", 0, 2)));
  Napi::Value w = o.Get("weight");
  if (!w.IsUndefined()) q.weight = static_cast<uint32_t>(IntegerArg(w, "qos.weight", 1, 1000));
  Napi::Value d = o.Get("dscp");
  if (!d.IsUndefined() && !d.IsNull()) q.dscp = static_cast<int>(IntegerArg(d, "qos.dscp", 0, 63));
  int64_t now = hbone::NowNs();
  auto limit = [&](const char* name) { return LimitsArg(env, o.Get(name), (std::string("qos.") + name).c_str(), now); };
  q.send_limit = limit("send");
  q.receive_limit = limit("receive");
  if (!q.flow.empty()) {
    q.stats = G().engine->Flow(q.flow);
    q.stats->priority.store(static_cast<int>(q.priority), std::memory_order_relaxed);
    q.stats->weight.store(q.weight, std::memory_order_relaxed);
  }
  return q;
}

// Claims a stream for attach; null when it is unknown or over (then the caller's socket is set to reset on close).
std::shared_ptr<StreamCounters> Claim(Napi::Env env, uint64_t id, int fd_to_reset) {
  EngineImpl* e = G().engine;
  auto c = e ? e->Lookup(id) : nullptr;
  if (c && c->attached.exchange(true)) throw Napi::Error::New(env, "stream " + std::to_string(id) + " is already attached");
  if (!c && fd_to_reset >= 0) {
    struct linger lg = {1, 0};
    setsockopt(fd_to_reset, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  }
  return c;
}

// hboneAttach(stream, fd, pending?, qos?) → false when the stream is unknown or over.
Napi::Value Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "hboneAttach(stream, fd, pending?, qos?)");
  uint64_t id = IdArg(info[0]);
  int fd = SocketFdArg(info[1], "fd");
  std::string pending;
  if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
    if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "pending must be a Buffer");
    auto b = info[2].As<Napi::Buffer<char>>();
    pending.assign(b.Data(), b.Length());
  }
  hbone::StreamQos qos = G().engine ? QosArg(env, info.Length() > 3 ? info[3] : env.Undefined()) : hbone::StreamQos();
  auto c = Claim(env, id, fd);
  if (!c) return Napi::Boolean::New(env, false);
  int d;
  try {
    d = DupNonBlocking(env, fd);
  } catch (...) {
    c->attached.store(false);
    throw;
  }
  G().engine->worker(c->worker).Attach(id, d, std::move(pending), std::move(qos));
  return Napi::Boolean::New(env, true);
}

// hboneAttachPair(stream, qos?) → the caller's end of a new AF_UNIX socketpair, or -1 when the stream is unknown or over.
Napi::Value AttachPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = IdArg(info[0]);
  hbone::StreamQos qos = G().engine ? QosArg(env, info.Length() > 1 ? info[1] : env.Undefined()) : hbone::StreamQos();
  auto c = Claim(env, id, -1);
  if (!c) return Napi::Number::New(env, -1);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
    int err = errno;
    c->attached.store(false);
    ThrowErrnoJs(env, "socketpair", err);
  }
  int fl = fcntl(sv[0], F_GETFL);
  fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
  G().engine->worker(c->worker).Attach(id, sv[0], std::string(), std::move(qos));
  return Napi::Number::New(env, sv[1]);
}

Napi::Value Abort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t id = IdArg(info[0]);
  EngineImpl* e = G().engine;
  auto c = e ? e->Lookup(id) : nullptr;
  if (!c) return Napi::Boolean::New(env, false);
  e->worker(c->worker).Abort(id);
  return Napi::Boolean::New(env, true);
}

Napi::Value CloseAll(const Napi::CallbackInfo& info) {
  EngineImpl* e = G().engine;
  if (e)
    for (auto& w : e->workers()) w->CloseAll();
  return info.Env().Undefined();
}

Napi::Value Drain(const Napi::CallbackInfo& info) {
  EngineImpl* e = G().engine;
  if (e)
    for (auto& w : e->workers()) w->Drain();
  return info.Env().Undefined();
}

Napi::Value Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  EngineImpl* e = G().engine;
  std::vector<double> values = e ? e->Counters() : std::vector<double>();
  Napi::Float64Array out = Napi::Float64Array::New(env, values.size());
  if (!values.empty()) std::memcpy(out.Data(), values.data(), values.size() * sizeof(double));
  return out;
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t si = 0, so = 0, ti = 0, to = 0, buffered = 0;
  if (EngineImpl* e = G().engine) {
    for (auto& w : e->workers()) {
      si += w->sessions_in.load();
      so += w->sessions_out.load();
      ti += w->streams_in.load();
      to += w->streams_out.load();
      buffered += w->buffered.load();
    }
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("sessionsIn", Napi::Number::New(env, static_cast<double>(si)));
  o.Set("sessionsOut", Napi::Number::New(env, static_cast<double>(so)));
  o.Set("streamsIn", Napi::Number::New(env, static_cast<double>(ti)));
  o.Set("streamsOut", Napi::Number::New(env, static_cast<double>(to)));
  o.Set("bufferedBytes", Napi::Number::New(env, static_cast<double>(buffered < 0 ? 0 : buffered)));
  o.Set("running", Napi::Boolean::New(env, G().engine != nullptr));
  return o;
}

// hboneQosState() → {fairShare, buckets: [{key, bytesPerSecond, burst, available, granted, throttles, delayedBytes,
// activeNs, holders}], flows: [{flow, priority, weight, sent, received}]}.
Napi::Value QosState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  EngineImpl* e = G().engine;
  o.Set("fairShare", Napi::Boolean::New(env, e ? e->options().fair_share : G().options.fair_share));
  Napi::Array buckets = Napi::Array::New(env);
  Napi::Array flows = Napi::Array::New(env);
  if (e) {
    auto num = [&](Napi::Object& x, const char* k, double v) { x.Set(k, Napi::Number::New(env, v)); };
    uint32_t i = 0;
    for (auto& b : e->buckets().List(hbone::NowNs())) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("key", Napi::String::New(env, b.key));
      num(x, "bytesPerSecond", static_cast<double>(b.rate));
      num(x, "burst", static_cast<double>(b.burst));
      num(x, "available", static_cast<double>(b.available));
      num(x, "granted", static_cast<double>(b.granted));
      num(x, "throttles", static_cast<double>(b.throttles));
      num(x, "delayedBytes", static_cast<double>(b.delayed));
      num(x, "activeNs", static_cast<double>(b.active_ns));
      num(x, "holders", b.holders);
      buckets.Set(i++, x);
    }
    i = 0;
    static const char* kNames[] = {"latency", "normal", "bulk"};
    for (auto& f : e->Flows()) {
      Napi::Object x = Napi::Object::New(env);
      x.Set("flow", Napi::String::New(env, f->key));
      int p = f->priority.load();
      x.Set("priority", Napi::String::New(env, kNames[p < 0 || p > 2 ? 1 : p]));
      num(x, "weight", f->weight.load());
      num(x, "sent", static_cast<double>(f->sent.load()));
      num(x, "received", static_cast<double>(f->received.load()));
      flows.Set(i++, x);
    }
  }
  o.Set("buckets", buckets);
  o.Set("flows", flows);
  return o;
}

// hboneQosSimulate(spec) — test entry point running the engine's pure QoS classes on a virtual clock, no sockets.
//   {kind: 'drr', quantum?, flows: [{flow, priority, weight, streams, chunk}], grants} → {served: [bytes per flow],
//     order: [flow index of each grant]}; every stream is always ready and moves min(allowance, chunk) per grant.
//   {kind: 'bucket', bytesPerSecond, burst?, steps: [{atNs, want}]} → {granted: [bytes per step], waitNs: [...]}:
//     each step asks Available(), consumes what it may, and reports the wait for the rest.
//   {kind: 'limits', buckets: [{bytesPerSecond, burst?}], streams: [[bucket index, ...]], steps: [{atNs, stream, want}]}
//     → {granted, waitNs, bucketGranted}: as 'bucket', each stream limited by every bucket it lists (ByteLimits).
Napi::Value QosSimulate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "hboneQosSimulate(spec) needs an object");
  Napi::Object spec = info[0].As<Napi::Object>();
  std::string kind = StringArg(spec.Get("kind"), "spec.kind");
  Napi::Object out = Napi::Object::New(env);
  if (kind == "drr") {
    Napi::Value qv = spec.Get("quantum");
    uint64_t quantum = qv.IsUndefined() ? hbone::qos::kQuantumPerWeight100 : static_cast<uint64_t>(IntegerArg(qv, "spec.quantum", 1, 1 << 30));
    hbone::qos::DrrScheduler sched(quantum);
    if (!spec.Get("flows").IsArray()) throw Napi::TypeError::New(env, "spec.flows must be an array");
    Napi::Array flows = spec.Get("flows").As<Napi::Array>();
    std::vector<uint64_t> chunk(flows.Length());
    std::unordered_map<uint64_t, uint32_t> item_flow;
    uint64_t next_item = 1;
    for (uint32_t f = 0; f < flows.Length(); f++) {
      if (!flows.Get(f).IsObject()) throw Napi::TypeError::New(env, "spec.flows[i] must be an object");
      Napi::Object fo = flows.Get(f).As<Napi::Object>();
      auto prio = static_cast<hbone::qos::Priority>(static_cast<int>(IntegerArg(fo.Get("priority"), "flows[i].priority", 0, 2)));
      auto weight = static_cast<uint32_t>(IntegerArg(fo.Get("weight"), "flows[i].weight", 1, 1000));
      auto streams = static_cast<uint32_t>(IntegerArg(fo.Get("streams"), "flows[i].streams", 1, 10000));
      chunk[f] = static_cast<uint64_t>(IntegerArg(fo.Get("chunk"), "flows[i].chunk", 1, 1 << 30));
      for (uint32_t k = 0; k < streams; k++) {
        item_flow[next_item] = f;
        sched.Ready(next_item++, f, prio, weight);
      }
    }
    auto grants = static_cast<uint32_t>(IntegerArg(spec.Get("grants"), "spec.grants", 1, 10000000));
    std::vector<double> served(flows.Length(), 0);
    Napi::Array order = Napi::Array::New(env);
    hbone::qos::DrrScheduler::Grant g;
    for (uint32_t i = 0; i < grants && sched.Next(&g); i++) {
      uint64_t moved = std::min<uint64_t>(g.allowance, chunk[g.flow]);
      served[g.flow] += static_cast<double>(moved);
      order.Set(i, Napi::Number::New(env, g.flow));
      sched.Charge(g, moved, true);
    }
    Napi::Array s = Napi::Array::New(env, served.size());
    for (size_t i = 0; i < served.size(); i++) s.Set(static_cast<uint32_t>(i), Napi::Number::New(env, served[i]));
    out.Set("served", s);
    out.Set("order", order);
    return out;
  }
  if (kind == "bucket") {
    auto rate = static_cast<uint64_t>(IntegerArg(spec.Get("bytesPerSecond"), "spec.bytesPerSecond", 1, static_cast<double>(hbone::qos::kMaxRateBytes)));
    Napi::Value bv = spec.Get("burst");
    uint64_t burst = bv.IsUndefined() ? hbone::qos::DefaultBurst(rate) : static_cast<uint64_t>(IntegerArg(bv, "spec.burst", 1, 1e15));
    hbone::qos::ByteBucket bucket(rate, burst, 0);
    if (!spec.Get("steps").IsArray()) throw Napi::TypeError::New(env, "spec.steps must be an array");
    Napi::Array steps = spec.Get("steps").As<Napi::Array>();
    Napi::Array granted = Napi::Array::New(env, steps.Length());
    Napi::Array waits = Napi::Array::New(env, steps.Length());
    for (uint32_t i = 0; i < steps.Length(); i++) {
      Napi::Object st = steps.Get(i).As<Napi::Object>();
      auto at = static_cast<int64_t>(IntegerArg(st.Get("atNs"), "steps[i].atNs", 0, 9007199254740991.0));
      auto want = static_cast<uint64_t>(IntegerArg(st.Get("want"), "steps[i].want", 0, 1e15));
      uint64_t got = std::min(want, bucket.Available(at));
      bucket.Consume(got, at);
      granted.Set(i, Napi::Number::New(env, static_cast<double>(got)));
      waits.Set(i, Napi::Number::New(env, static_cast<double>(got < want ? bucket.WaitNs(want - got, at) : 0)));
    }
    out.Set("burst", Napi::Number::New(env, static_cast<double>(burst)));
    out.Set("granted", granted);
    out.Set("waitNs", waits);
    return out;
  }
  if (kind == "limits") {
    if (!spec.Get("buckets").IsArray() || !spec.Get("streams").IsArray() || !spec.Get("steps").IsArray())
      throw Napi::TypeError::New(env, "spec.buckets, spec.streams and spec.steps must be arrays");
    Napi::Array bs = spec.Get("buckets").As<Napi::Array>();
    std::vector<std::shared_ptr<hbone::qos::ByteBucket>> buckets;
    for (uint32_t i = 0; i < bs.Length(); i++) {
      Napi::Object bo = bs.Get(i).As<Napi::Object>();
      auto rate = static_cast<uint64_t>(IntegerArg(bo.Get("bytesPerSecond"), "buckets[i].bytesPerSecond", 1, static_cast<double>(hbone::qos::kMaxRateBytes)));
      Napi::Value bv = bo.Get("burst");
      uint64_t burst = bv.IsUndefined() ? hbone::qos::DefaultBurst(rate) : static_cast<uint64_t>(IntegerArg(bv, "buckets[i].burst", 1, 1e15));
      buckets.push_back(std::make_shared<hbone::qos::ByteBucket>(rate, burst, 0));
    }
    Napi::Array ss = spec.Get("streams").As<Napi::Array>();
    std::vector<hbone::qos::ByteLimits> streams;
    for (uint32_t i = 0; i < ss.Length(); i++) {
      Napi::Array idx = ss.Get(i).As<Napi::Array>();
      std::vector<std::shared_ptr<hbone::qos::ByteBucket>> mine;
      for (uint32_t k = 0; k < idx.Length(); k++)
        mine.push_back(buckets.at(static_cast<size_t>(IntegerArg(idx.Get(k), "streams[i][k]", 0, static_cast<double>(buckets.size() - 1)))));
      streams.emplace_back(std::move(mine));
    }
    Napi::Array steps = spec.Get("steps").As<Napi::Array>();
    Napi::Array granted = Napi::Array::New(env, steps.Length());
    Napi::Array waits = Napi::Array::New(env, steps.Length());
    for (uint32_t i = 0; i < steps.Length(); i++) {
      Napi::Object st = steps.Get(i).As<Napi::Object>();
      auto at = static_cast<int64_t>(IntegerArg(st.Get("atNs"), "steps[i].atNs", 0, 9007199254740991.0));
      auto want = static_cast<uint64_t>(IntegerArg(st.Get("want"), "steps[i].want", 0, 1e15));
      auto& lim = streams.at(static_cast<size_t>(IntegerArg(st.Get("stream"), "steps[i].stream", 0, static_cast<double>(streams.size() - 1))));
      uint64_t got = std::min(want, lim.Available(at));
      lim.Consume(got, at);
      granted.Set(i, Napi::Number::New(env, static_cast<double>(got)));
      waits.Set(i, Napi::Number::New(env, static_cast<double>(got < want ? lim.WaitNs(want - got, at) : 0)));
    }
    Napi::Array totals = Napi::Array::New(env, buckets.size());
    for (size_t i = 0; i < buckets.size(); i++) totals.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(buckets[i]->granted())));
    out.Set("granted", granted);
    out.Set("waitNs", waits);
    out.Set("bucketGranted", totals);
    return out;
  }
  throw Napi::TypeError::New(env, "spec.kind must be 'drr', 'bucket' or 'limits'");
}

// hboneRef(keepAlive): the facade keeps the event loop alive only while it waits for an event.
Napi::Value Ref(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ref = info.Length() > 0 && info[0].ToBoolean().Value();
  G().want_ref = ref;
  if (G().engine) G().engine->SetRef(ref);
  return env.Undefined();
}

}  // namespace

void RegisterHbone(Napi::Env env, Napi::Object exports) {
  exports.Set("hboneInit", Napi::Function::New(env, Init, "hboneInit"));
  exports.Set("hboneConfigure", Napi::Function::New(env, Configure, "hboneConfigure"));
  exports.Set("hboneSetIdentity", Napi::Function::New(env, SetIdentity, "hboneSetIdentity"));
  exports.Set("hboneRemoveIdentity", Napi::Function::New(env, RemoveIdentity, "hboneRemoveIdentity"));
  exports.Set("hboneSetTrustAnchors", Napi::Function::New(env, SetTrustAnchors, "hboneSetTrustAnchors"));
  exports.Set("hboneOpen", Napi::Function::New(env, Open, "hboneOpen"));
  exports.Set("hboneServe", Napi::Function::New(env, Serve, "hboneServe"));
  exports.Set("hboneRespond", Napi::Function::New(env, Respond, "hboneRespond"));
  exports.Set("hboneAttach", Napi::Function::New(env, Attach, "hboneAttach"));
  exports.Set("hboneAttachPair", Napi::Function::New(env, AttachPair, "hboneAttachPair"));
  exports.Set("hboneAbort", Napi::Function::New(env, Abort, "hboneAbort"));
  exports.Set("hboneCloseAll", Napi::Function::New(env, CloseAll, "hboneCloseAll"));
  exports.Set("hboneDrain", Napi::Function::New(env, Drain, "hboneDrain"));
  exports.Set("hboneCounters", Napi::Function::New(env, Counters, "hboneCounters"));
  exports.Set("hboneStats", Napi::Function::New(env, Stats, "hboneStats"));
  exports.Set("hboneRef", Napi::Function::New(env, Ref, "hboneRef"));
  exports.Set("hboneQosState", Napi::Function::New(env, QosState, "hboneQosState"));
  exports.Set("hboneChargeLimits", Napi::Function::New(env, ChargeLimits, "hboneChargeLimits"));
  exports.Set("hboneQosSimulate", Napi::Function::New(env, QosSimulate, "hboneQosSimulate"));
}

}  // namespace smesh
