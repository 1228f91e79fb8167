// N-API surface of the native HTTP/1.1 engine: argument checks (decisions are validated here so nothing malformed reaches
// the wire), round-robin placement of client sockets on workers, and one ThreadSafeFunction carrying batched events
// (request heads, upstream failures, results, takeovers, session closes) to the JS thread (agent/native/http1.ts).
#include "http1.h"

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
#include "http1_engine.h"
#include "http1_parser.h"

namespace smesh {

namespace {

using http1::Decision;
using http1::Event;
using http1::EventType;
using http1::Options;
using http1::Worker;

constexpr int kMaxWorkers = 16;
constexpr size_t kMaxLocalBody = 1024 * 1024;

class EngineImpl;

struct Globals {
  Options options;
  EngineImpl* engine = nullptr;
  Napi::FunctionReference callback;
  bool want_ref = false;
};

Globals& G() {
  static Globals* g = new Globals();
  return *g;
}

class EngineImpl : public EngineHost<EngineImpl, http1::Engine, Worker, Event> {
 public:
  EngineImpl(Napi::Env env, const Options& options, Napi::Function callback) : EngineHost(env, "smesh-http1", options.workers, callback, options) {}

  static EngineImpl* Current() { return G().engine; }
  static void Release(Event& ev) {
    if ((ev.type == EventType::kTakeover || ev.type == EventType::kUpstreamPair) && ev.fd >= 0) close(ev.fd);
  }

  static Napi::Object ToJs(Napi::Env env, const Event& ev) {
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
    auto str = [&](const char* k, const std::string& v) { o.Set(k, Napi::String::New(env, v)); };
    auto flag = [&](const char* k, bool v) { o.Set(k, Napi::Boolean::New(env, v)); };
    num("id", static_cast<double>(ev.id));
    num("session", static_cast<double>(ev.session));
    switch (ev.type) {
      case EventType::kRequest: {
        str("t", "request");
        str("method", ev.method);
        str("target", ev.target);
        str("authority", ev.authority);
        str("version", ev.minor == 0 ? "1.0" : "1.1");
        Napi::Array h = Napi::Array::New(env, ev.headers.size());
        for (size_t i = 0; i < ev.headers.size(); i++)
          h.Set(static_cast<uint32_t>(i), Napi::String::New(env, ev.headers[i]));  // latin1 bytes may be invalid UTF-8: replaced
        o.Set("headers", h);
        str("bodyKind", ev.body_kind);
        num("contentLength", static_cast<double>(ev.content_length));
        flag("upgrade", ev.upgrade);
        flag("expectContinue", ev.expect_continue);
        flag("keepAlive", ev.keep_alive);
        str("localAddress", ev.local_address);
        num("localPort", ev.local_port);
        str("remoteAddress", ev.remote_address);
        num("remotePort", ev.remote_port);
        break;
      }
      case EventType::kFailed:
        str("t", "failed");
        str("failure", ev.failure);
        str("detail", ev.detail);
        str("target", ev.target_addr);
        flag("reused", ev.reused);
        break;
      case EventType::kResult:
        str("t", "result");
        num("status", ev.status);
        num("requestBytes", static_cast<double>(ev.request_bytes));
        num("responseBytes", static_cast<double>(ev.response_bytes));
        num("durationUs", static_cast<double>(ev.duration_us));
        str("outcome", ev.outcome);
        if (!ev.failure.empty()) str("failure", ev.failure);
        if (!ev.detail.empty()) str("detail", ev.detail);
        if (!ev.target_addr.empty()) str("target", ev.target_addr);
        flag("reused", ev.reused);
        break;
      case EventType::kTakeover:
        str("t", "takeover");
        num("fd", ev.fd);
        o.Set("pending", Napi::Buffer<char>::Copy(env, ev.pending.data(), ev.pending.size()));
        break;
      case EventType::kUpstreamPair:
        str("t", "pair");
        num("fd", ev.fd);
        str("key", ev.target_addr);
        break;
      case EventType::kClosed:
        str("t", "closed");
        str("reason", ev.reason);
        if (!ev.detail.empty()) str("detail", ev.detail);
        num("requests", static_cast<double>(ev.requests));
        num("bytesIn", static_cast<double>(ev.request_bytes));
        num("bytesOut", static_cast<double>(ev.response_bytes));
        break;
    }
    return o;
  }
};

EngineImpl& Running(Napi::Env env) {
  Globals& g = G();
  if (g.engine != nullptr) {
    if (g.engine->env() != static_cast<napi_env>(env)) throw Napi::Error::New(env, "the HTTP/1.1 engine is bound to another Node environment (worker thread)");
    return *g.engine;
  }
  if (g.callback.IsEmpty()) throw Napi::Error::New(env, "http1Init(callback) must be called before the HTTP/1.1 engine is used");
  g.engine = new EngineImpl(env, g.options, g.callback.Value());
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

std::string StringArg(const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) throw Napi::TypeError::New(v.Env(), what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

double IntegerArg(const Napi::Value& v, const std::string& what, double lo, double hi) {
  if (!v.IsNumber()) throw Napi::TypeError::New(v.Env(), what + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo && d <= hi) || d != static_cast<double>(static_cast<int64_t>(d)))
    throw Napi::TypeError::New(v.Env(),
                               what + " must be an integer " + std::to_string(static_cast<int64_t>(lo)) + ".." + std::to_string(static_cast<int64_t>(hi)));
  return d;
}

uint64_t IdArg(const Napi::Value& v) { return static_cast<uint64_t>(IntegerArg(v, "request id", 1, 9007199254740991.0)); }

[[noreturn]] void ThrowErrnoJs(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, what + ": " + std::strerror(err));
  e.Set("code", Napi::String::New(env, NativeError("", err).code()));
  e.Set("errno", Napi::Number::New(env, err));
  throw e;
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

// A flat [name, value, ...] list of header fields to write: token names (lower-cased), values without CR/LF/NUL.
std::vector<std::pair<std::string, std::string>> HeaderListArg(const Napi::Value& v, const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), what + " must be a flat array of name, value strings");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() % 2 != 0) throw Napi::TypeError::New(v.Env(), what + " must hold name, value pairs");
  for (uint32_t i = 0; i + 1 < a.Length(); i += 2) {
    std::string name = http1::Lower(StringArg(a.Get(i), what + " name"));
    std::string value = StringArg(a.Get(i + 1), what + " value");
    bool ok = !name.empty();
    for (unsigned char c : name) ok = ok && http1::IsTokenChar(c);
    if (!ok) throw Napi::TypeError::New(v.Env(), what + ": '" + name + "' is not a valid header field name");
    for (unsigned char c : value)
      if (!http1::IsFieldValueChar(c)) throw Napi::TypeError::New(v.Env(), what + ": the value of " + name + " holds a control character (CR, LF, NUL, ...)");
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

std::string BodyArg(const Napi::Value& v, const std::string& what) {
  if (v.IsUndefined() || v.IsNull()) return std::string();
  std::string body;
  if (v.IsBuffer()) {
    auto b = v.As<Napi::Buffer<char>>();
    body.assign(b.Data(), b.Length());
  } else if (v.IsString()) {
    body = v.As<Napi::String>().Utf8Value();
  } else {
    throw Napi::TypeError::New(v.Env(), what + " must be a Buffer or a string");
  }
  if (body.size() > kMaxLocalBody) throw Napi::TypeError::New(v.Env(), what + " is larger than 1 MiB");
  return body;
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "http1Init(callback) needs a function");
  Globals& g = G();
  if (g.engine != nullptr) throw Napi::Error::New(env, "http1Init: the HTTP/1.1 engine is already running");
  g.callback = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "http1Configure(options) needs an options object");
  Globals& g = G();
  if (g.engine != nullptr) throw Napi::Error::New(env, "http1Configure: the HTTP/1.1 engine is already running; configure before the first use");
  Napi::Object o = info[0].As<Napi::Object>();
  Options opts = g.options;
  auto opt = [&](const char* key, double lo, double hi, auto setter) {
    Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    setter(IntegerArg(v, std::string("options.") + key, lo, hi));
  };
  opt("workers", 1, kMaxWorkers, [&](double d) { opts.workers = static_cast<int>(d); });
  opt("maxHeadBytes", 1024, 1024 * 1024, [&](double d) { opts.max_head_bytes = static_cast<size_t>(d); });
  opt("maxHeaders", 1, 10000, [&](double d) { opts.max_headers = static_cast<size_t>(d); });
  opt("maxRequestLine", 256, 1024 * 1024, [&](double d) { opts.max_request_line = static_cast<size_t>(d); });
  opt("maxPipelined", 1, 1024, [&](double d) { opts.max_pipelined = static_cast<size_t>(d); });
  opt("maxBufferBytes", 16 * 1024, 64 * 1024 * 1024, [&](double d) { opts.max_buffer = static_cast<size_t>(d); });
  opt("maxSkipBodyBytes", 0, 1024.0 * 1024 * 1024, [&](double d) { opts.max_skip_body = static_cast<size_t>(d); });
  opt("connectTimeoutMs", 1, 3600000, [&](double d) { opts.connect_timeout_ms = static_cast<int64_t>(d); });
  opt("responseTimeoutMs", 1, 86400000, [&](double d) { opts.response_timeout_ms = static_cast<int64_t>(d); });
  opt("decisionTimeoutMs", 1, 3600000, [&](double d) { opts.decision_timeout_ms = static_cast<int64_t>(d); });
  opt("headerTimeoutMs", 1, 3600000, [&](double d) { opts.header_timeout_ms = static_cast<int64_t>(d); });
  opt("clientIdleTimeoutMs", 1, 86400000.0 * 7, [&](double d) { opts.client_idle_timeout_ms = static_cast<int64_t>(d); });
  opt("upstreamIdleTimeoutMs", 1, 86400000.0 * 7, [&](double d) { opts.upstream_idle_timeout_ms = static_cast<int64_t>(d); });
  opt("maxIdlePerTarget", 0, 100000, [&](double d) { opts.max_idle_per_target = static_cast<uint32_t>(d); });
  if (opts.max_head_bytes > opts.max_buffer) throw Napi::TypeError::New(env, "options.maxHeadBytes must not exceed options.maxBufferBytes");
  g.options = opts;
  return env.Undefined();
}

// http1Serve(fd) → session id. The fd is dup'd (non-blocking); the caller destroys its own socket without reading.
Napi::Value Serve(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "http1Serve(fd, options?)");
  int fd = static_cast<int>(IntegerArg(info[0], "fd", 0, 2147483647.0));
  size_t max_head = 0;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value m = info[1].As<Napi::Object>().Get("maxHeadBytes");
    if (!m.IsUndefined()) max_head = static_cast<size_t>(IntegerArg(m, "options.maxHeadBytes", 1024, 1048576));
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) throw Napi::TypeError::New(env, "fd (" + std::to_string(fd) + ") is not an open socket");
  EngineImpl& e = Running(env);
  if (max_head > e.options().max_buffer) max_head = e.options().max_buffer;  // a head must fit in the session's buffer
  http1::ServeCommand cmd;
  sockaddr_storage ss{};
  socklen_t sl = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) AddressOf(ss, &cmd.local_address, &cmd.local_port);
  sl = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &sl) == 0) AddressOf(ss, &cmd.remote_address, &cmd.remote_port);
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) ThrowErrnoJs(env, "http1Serve: dup", errno);
  int fl = fcntl(d, F_GETFL);
  if (fl < 0 || fcntl(d, F_SETFL, fl | O_NONBLOCK) < 0) {
    int err = errno;
    close(d);
    ThrowErrnoJs(env, "http1Serve: fcntl(O_NONBLOCK)", err);
  }
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    int one = 1;
    setsockopt(d, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  cmd.fd = d;
  cmd.max_head_bytes = max_head;
  cmd.session = e.NextId();
  uint64_t id = cmd.session;
  e.worker(e.NextWorker()).Serve(std::move(cmd));
  return Napi::Number::New(env, static_cast<double>(id));
}

Decision LocalAnswerArgs(const Napi::CallbackInfo& info, size_t first, const std::string& what) {
  Decision d;
  d.kind = Decision::Kind::kDeny;
  d.status = static_cast<int>(IntegerArg(info[first], what + " status", 200, 599));
  d.headers = HeaderListArg(info[first + 1], what + " headers");
  d.body = BodyArg(info[first + 2], what + " body");
  return d;
}

// http1Decide(id, decision) → false when the request is unknown or over.
Napi::Value Decide(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[1].IsObject()) throw Napi::TypeError::New(env, "http1Decide(requestId, decision)");
  uint64_t id = IdArg(info[0]);
  Napi::Object o = info[1].As<Napi::Object>();
  std::string kind = StringArg(o.Get("kind"), "decision.kind");
  Decision d;
  if (kind == "deny") {
    d.kind = Decision::Kind::kDeny;
    d.status = static_cast<int>(IntegerArg(o.Get("status"), "decision.status", 200, 599));
    d.headers = HeaderListArg(o.Get("headers"), "decision.headers");
    d.body = BodyArg(o.Get("body"), "decision.body");
  } else if (kind == "takeover") {
    d.kind = Decision::Kind::kTakeover;
  } else if (kind == "forward") {
    d.kind = Decision::Kind::kForward;
    in6_addr a6;
    in_addr a4;
    Napi::Value pair = o.Get("pair");
    if (!pair.IsUndefined() && !pair.IsNull()) {
      d.pair = StringArg(pair, "decision.pair");
      if (d.pair.empty() || d.pair.size() > 1024) throw Napi::TypeError::New(env, "decision.pair must be a key of 1 to 1024 characters");
      if (!o.Get("host").IsUndefined() || !o.Get("sourceAddress").IsUndefined())
        throw Napi::TypeError::New(env, "decision.pair is instead of host, port and sourceAddress");
    } else {
      d.host = StringArg(o.Get("host"), "decision.host");
      if (inet_pton(AF_INET, d.host.c_str(), &a4) != 1 && inet_pton(AF_INET6, d.host.c_str(), &a6) != 1)
        throw Napi::TypeError::New(env, "decision.host must be a numeric IPv4 or IPv6 address, got '" + d.host + "'");
      d.port = static_cast<int>(IntegerArg(o.Get("port"), "decision.port", 1, 65535));
    }
    Napi::Value src = o.Get("sourceAddress");
    if (d.pair.empty() && !src.IsUndefined() && !src.IsNull()) {
      d.source = StringArg(src, "decision.sourceAddress");
      bool host4 = inet_pton(AF_INET, d.host.c_str(), &a4) == 1;
      bool src4 = inet_pton(AF_INET, d.source.c_str(), &a4) == 1;
      bool src6 = !src4 && inet_pton(AF_INET6, d.source.c_str(), &a6) == 1;
      if (!(host4 ? src4 : src6))
        throw Napi::TypeError::New(env, "decision.sourceAddress must be a numeric address of the same family as host '" + d.host + "', got '" + d.source + "'");
    }
    d.set_headers = HeaderListArg(o.Get("setHeaders"), "decision.setHeaders");
    Napi::Value rm = o.Get("removeHeaders");
    if (!rm.IsUndefined() && !rm.IsNull()) {
      if (!rm.IsArray()) throw Napi::TypeError::New(env, "decision.removeHeaders must be an array of names");
      Napi::Array a = rm.As<Napi::Array>();
      for (uint32_t i = 0; i < a.Length(); i++) d.remove_headers.push_back(http1::Lower(StringArg(a.Get(i), "decision.removeHeaders[i]")));
    }
    Napi::Value path = o.Get("path");
    if (!path.IsUndefined() && !path.IsNull()) {
      d.path = StringArg(path, "decision.path");
      bool ok = !d.path.empty() && d.path[0] == '/';
      for (unsigned char c : d.path) ok = ok && c > 0x20 && c < 0x7f;
      if (!ok) throw Napi::TypeError::New(env, "decision.path must start with / and hold visible ASCII only");
      d.has_path = true;
    }
    auto opt = [&](const char* key, double hi) -> double {
      Napi::Value v = o.Get(key);
      return v.IsUndefined() ? 0 : IntegerArg(v, std::string("decision.") + key, 0, hi);
    };
    d.max_requests_per_connection = static_cast<uint32_t>(opt("maxRequestsPerConnection", 4294967295.0));
    d.connect_timeout_ms = static_cast<int64_t>(opt("connectTimeoutMs", 3600000));
    d.response_timeout_ms = static_cast<int64_t>(opt("responseTimeoutMs", 86400000));
  } else {
    throw Napi::TypeError::New(env, "decision.kind must be 'deny', 'forward' or 'takeover', got '" + kind + "'");
  }
  EngineImpl* e = G().engine;
  int w = e ? e->WorkerOf(id) : -1;
  if (w < 0) return Napi::Boolean::New(env, false);
  e->worker(w).Decide(id, std::move(d));
  return Napi::Boolean::New(env, true);
}

// http1Reply(id, status, headers, body) → false when the request is unknown or over. For a request whose upstream failed.
Napi::Value Reply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "http1Reply(requestId, status, headers?, body?)");
  uint64_t id = IdArg(info[0]);
  Decision d = LocalAnswerArgs(info, 1, "reply");
  EngineImpl* e = G().engine;
  int w = e ? e->WorkerOf(id) : -1;
  if (w < 0) return Napi::Boolean::New(env, false);
  e->worker(w).Reply(id, std::move(d));
  return Napi::Boolean::New(env, true);
}

Napi::Value CloseAll(const Napi::CallbackInfo& info) {
  EngineImpl* e = G().engine;
  if (e)
    for (auto& w : e->workers()) w->CloseAll();
  return info.Env().Undefined();
}

// http1CloseSession(session): resets one client session (its in-flight requests end 'aborted'); unknown ids are ignored.
Napi::Value CloseSessionJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "http1CloseSession(sessionId)");
  uint64_t id = IdArg(info[0]);
  EngineImpl* e = G().engine;
  if (e)
    for (auto& w : e->workers()) w->CloseSession(id);
  return env.Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t sessions = 0, inflight = 0, ups = 0, idle = 0, buffered = 0;
  uint64_t total = 0, bad = 0, connects = 0, reuses = 0;
  if (EngineImpl* e = G().engine) {
    for (auto& w : e->workers()) {
      sessions += w->sessions.load();
      inflight += w->requests_in_flight.load();
      ups += w->upstreams.load();
      idle += w->upstreams_idle.load();
      buffered += w->buffered.load();
      total += w->requests_total.load();
      bad += w->bad_requests.load();
      connects += w->upstream_connects.load();
      reuses += w->upstream_reuses.load();
    }
  }
  Napi::Object o = Napi::Object::New(env);
  auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
  num("sessions", static_cast<double>(sessions));
  num("requestsInFlight", static_cast<double>(inflight));
  num("upstreams", static_cast<double>(ups));
  num("upstreamsIdle", static_cast<double>(idle));
  num("bufferedBytes", static_cast<double>(buffered < 0 ? 0 : buffered));
  num("requestsTotal", static_cast<double>(total));
  num("badRequests", static_cast<double>(bad));
  num("upstreamConnects", static_cast<double>(connects));
  num("upstreamReuses", static_cast<double>(reuses));
  o.Set("running", Napi::Boolean::New(env, G().engine != nullptr));
  return o;
}

Napi::Value Ref(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ref = info.Length() > 0 && info[0].ToBoolean().Value();
  G().want_ref = ref;
  if (G().engine) G().engine->SetRef(ref);
  return env.Undefined();
}

}  // namespace

void RegisterHttp1(Napi::Env env, Napi::Object exports) {
  exports.Set("http1Init", Napi::Function::New(env, Init, "http1Init"));
  exports.Set("http1Configure", Napi::Function::New(env, Configure, "http1Configure"));
  exports.Set("http1Serve", Napi::Function::New(env, Serve, "http1Serve"));
  exports.Set("http1Decide", Napi::Function::New(env, Decide, "http1Decide"));
  exports.Set("http1Reply", Napi::Function::New(env, Reply, "http1Reply"));
  exports.Set("http1CloseAll", Napi::Function::New(env, CloseAll, "http1CloseAll"));
  exports.Set("http1CloseSession", Napi::Function::New(env, CloseSessionJs, "http1CloseSession"));
  exports.Set("http1Stats", Napi::Function::New(env, Stats, "http1Stats"));
  exports.Set("http1Ref", Napi::Function::New(env, Ref, "http1Ref"));
  // What this build's decisions take beyond the first version's (the TypeScript facade checks before using them).
  Napi::Array features = Napi::Array::New(env, 1);
  features.Set(0u, Napi::String::New(env, "pair"));
  exports.Set("http1Features", features);
}

}  // namespace smesh
