// HBONE engine worker: one thread with an edge-triggered epoll owning TLS 1.3 sessions (OpenSSL on the socket),
// their HTTP/2 sessions (nghttp2, the copy Node exports) and the CONNECT streams relayed to attached sockets.
//
// Flow control is manual (NO_AUTO_WINDOW_UPDATE): bytes received on a stream are consumed only once written to its
// socket, so a stream never buffers more than its receive window; a socket is read only from nghttp2's data source
// callback, i.e. only while the stream's send window and the session's TLS output buffer have room. Objects are never
// freed inside an nghttp2 callback: sessions and streams are looked up by id and retired to a graveyard emptied at
// the end of each loop turn.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

#include "errors.h"
#include "hbone_engine.h"

namespace smesh::hbone {

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

namespace {

constexpr uint64_t kTagWake = 0;
constexpr uint64_t kTagSession = 1;
constexpr uint64_t kTagStream = 2;
constexpr size_t kTlsOutTarget = 64 * 1024;  // plaintext gathered from nghttp2 before SSL_write cuts records
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int64_t kTickMs = 50;
constexpr size_t kMaxRequestHeaderBytes = 64 * 1024;
constexpr size_t kMaxRequestHeaders = 100;
constexpr int kMaxInvalidFrames = 1000;
constexpr int64_t kEarlyResetWindowMs = 10000;
constexpr int64_t kMaxCloseGraceMs = 1000;
constexpr uint64_t kNoAllowance = UINT64_MAX;

uint64_t Tag(uint64_t id, uint64_t kind) { return (id << 2) | kind; }

void* IdPtr(uint64_t id) { return reinterpret_cast<void*>(static_cast<uintptr_t>(id)); }
uint64_t PtrId(void* p) { return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)); }

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

// Linger 0: close() sends RST instead of FIN (no effect on AF_UNIX, where the peer sees EOF).
void ResetAndClose(int& fd) {
  if (fd < 0) return;
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  CloseFd(fd);
}

std::string FormatHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// "a.b.c.d:port" or "[v6]:port" with a port 1..65535.
bool ValidAuthority(const std::string& a) {
  std::string host, port;
  if (!a.empty() && a[0] == '[') {
    size_t close = a.find(']');
    if (close == std::string::npos || close + 1 >= a.size() || a[close + 1] != ':') return false;
    host = a.substr(1, close - 1);
    port = a.substr(close + 2);
    in6_addr v6;
    if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return false;
  } else {
    size_t colon = a.rfind(':');
    if (colon == std::string::npos || colon == 0) return false;
    host = a.substr(0, colon);
    port = a.substr(colon + 1);
    in_addr v4;
    if (inet_pton(AF_INET, host.c_str(), &v4) != 1) return false;
  }
  if (port.empty() || port.size() > 5) return false;
  for (char c : port)
    if (c < '0' || c > '9') return false;
  long p = std::strtol(port.c_str(), nullptr, 10);
  return p >= 1 && p <= 65535;
}

// Bytes waiting for a socket; the gap before `head_` is reclaimed once it is half the buffer.
class ByteQueue {
 public:
  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }
  const char* data() const { return data_.data() + head_; }
  void Append(const uint8_t* p, size_t n) {
    if (head_ > 0 && head_ >= data_.size() / 2) {
      data_.erase(0, head_);
      head_ = 0;
    }
    data_.append(reinterpret_cast<const char*>(p), n);
  }
  void Consume(size_t n) {
    head_ += n;
    if (head_ >= data_.size()) {
      data_.clear();
      head_ = 0;
    }
  }
  void Release() {
    std::string().swap(data_);
    head_ = 0;
  }

 private:
  std::string data_;
  size_t head_ = 0;
};

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

enum class SState { kConnecting, kHandshaking, kReady, kClosing, kClosed };

struct Session;

struct Stream {
  uint64_t id = 0;
  Session* session = nullptr;
  int32_t h2id = -1;
  bool inbound = false;
  std::shared_ptr<StreamCounters> counters;
  int fd = -1;
  bool attached = false;
  int64_t deadline_ms = 0;  // outbound: the CONNECT response; inbound: JS's answer
  OpenCommand req;          // outbound
  // inbound request head
  std::string method, authority;
  std::vector<std::string> headers;
  size_t header_bytes = 0;
  bool header_overflow = false;
  int status = 0;  // outbound response
  bool reported = false;
  bool responded = false;
  // relay
  ByteQueue rx;  // from the tunnel, not yet written to fd
  bool rx_end = false;
  bool fd_shut_wr = false;
  std::string pending;
  size_t pending_off = 0;
  bool fd_eof = false;
  bool deferred = false;
  bool es_sent = false;
  bool h2_closed = false;
  uint32_t h2_error = 0;
  bool rst_received = false;
  uint64_t unconsumed = 0;
  bool finished = false;
  // QoS (set at attach)
  StreamQos qos;
  uint32_t flow = 0;                  // worker-local id of qos.flow
  uint64_t allowance = kNoAllowance;  // fair share: bytes the scheduler granted this turn (fd → tunnel)
  uint64_t grant_moved = 0;
  bool grant_capped = false;    // the grant ran out while the socket may hold more
  int64_t send_wake_ns = 0;     // send_limit: paused until then
  int64_t receive_wake_ns = 0;  // receive_limit: paused until then
  bool send_waited = false, receive_waited = false;
};

struct Session {
  uint64_t id = 0;
  void* worker = nullptr;  // WorkerImpl*
  bool inbound = false;
  int fd = -1;
  SSL* ssl = nullptr;
  nghttp2_session* h2 = nullptr;
  SState state = SState::kConnecting;
  std::shared_ptr<TlsIdentity> identity;
  std::string key, source_id;
  std::vector<std::string> accept_ids;
  std::string remote;
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
  std::string peer_id;
  bool handshake_done = false;
  bool peeked = false;
  bool got_frame = false;
  int64_t deadline_ms = 0;
  std::vector<uint64_t> waiting;  // outbound streams waiting for the handshake
  std::unordered_set<uint64_t> streams;
  uint32_t active = 0;  // outbound streams counted against the stream limit
  uint32_t peer_max_streams = UINT32_MAX;
  bool retired = false;
  const char* retire_reason = "normal";
  bool goaway_received = false;
  bool drain_goaway_sent = false;  // inbound: a graceful GOAWAY (drain) was submitted
  int64_t idle_since = 0;
  // liveness
  uint64_t bytes_read = 0, bytes_written = 0, seen_read = 0, seen_written = 0;
  bool ping_outstanding = false;
  int64_t next_check = 0;
  // TLS output (plaintext for SSL_write)
  std::string out;
  size_t out_off = 0;
  // abuse accounting
  uint32_t early_resets = 0;
  int64_t early_window_start = 0;
  int invalid_frames = 0;
  // fair share of its TLS reads (tunnel → sockets): the workload of the first stream attached to it
  std::string flow_key;
  uint32_t flow = 0;
  qos::Priority prio = qos::Priority::kBulk;
  uint32_t weight = qos::kDefaultWeight;
  // a close decided inside an nghttp2 callback, carried out after it
  bool close_pending = false;
  const char* close_reason = nullptr;
  std::string close_detail;
  int close_goaway = -1;
  // why nghttp2 itself ended the session (it sent GOAWAY with an error code)
  uint32_t goaway_sent_code = 0;
};

nghttp2_session_callbacks* Callbacks();

}  // namespace

class WorkerImpl {
 public:
  WorkerImpl(Worker* owner, Engine* engine, int index) : owner_(owner), engine_(engine), opts_(engine->options()), index_(index) {}

  ~WorkerImpl() {
    CloseFd(epfd_);
    CloseFd(wakefd_);
  }

  void Start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) ThrowErrno("hbone worker: epoll_create1", errno);
    wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) ThrowErrno("hbone worker: eventfd", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagWake;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) ThrowErrno("hbone worker: epoll_ctl(eventfd)", errno);
    rbuf_.resize(kReadBuffer);
    thread_ = std::thread([this] {
      // Named for top -H / ps -L: the engine's threads are told apart from Node's own.
      std::string name = "smesh-hbone-" + std::to_string(index_);
      pthread_setname_np(pthread_self(), name.c_str());
      // --worker-nice: the relay threads' CPU weight against the node's other threads (raising it needs CAP_SYS_NICE;
      // without it the thread keeps its weight).
      if (opts_.worker_nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), opts_.worker_nice);
      Run();
    });
  }

  void Post(std::function<void(WorkerImpl&)> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      commands_.push_back(std::move(fn));
    }
    uint64_t one = 1;
    ssize_t n = write(wakefd_, &one, sizeof(one));
    (void)n;
  }

  void Stop() {
    stop_.store(true);
    uint64_t one = 1;
    ssize_t n = write(wakefd_, &one, sizeof(one));
    (void)n;
    if (thread_.joinable()) thread_.join();
    // Nothing reads events anymore: release every fd and TLS/HTTP/2 state without reporting.
    for (auto& [id, st] : streams_) ResetAndClose(st->fd);
    streams_.clear();
    for (auto& [id, s] : sessions_) FreeSession(*s);
    sessions_.clear();
    graveyard_sessions_.clear();
    graveyard_streams_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    commands_.clear();
  }

  // --- commands (worker thread) ---

  void DoOpen(OpenCommand cmd) {
    auto st = std::make_unique<Stream>();
    st->id = cmd.id;
    st->inbound = false;
    st->counters = engine_->Lookup(cmd.id);
    st->deadline_ms = cmd.start_ms + opts_.connect_timeout_ms;
    st->req = std::move(cmd);
    Stream* raw = st.get();
    streams_[raw->id] = std::move(st);
    owner_->streams_out++;
    if (!raw->counters) {  // aborted before it got here
      DropStream(raw);
      return;
    }
    const OpenCommand& req = raw->req;
    std::string key = req.source_id + "|" + FormatHostPort(req.host, req.port) + "|" + (req.accept_ids.empty() ? std::string() : req.accept_ids[0]) + "|" +
                      std::to_string(req.dscp);
    Session* s = FindPooled(key);
    if (s == nullptr) {
      auto identity = engine_->tls().Identity(req.source_id);
      if (!identity) {
        FailOpen(raw, "no_certificate", "no certificate for source identity " + req.source_id + " (setIdentity first)");
        return;
      }
      std::string err;
      s = Connect(key, req, identity, &err);
      if (s == nullptr) {
        FailOpen(raw, "connect", err);
        return;
      }
    }
    raw->session = s;
    s->streams.insert(raw->id);
    s->active++;
    if (s->state == SState::kReady) {
      if (!Accepts(raw->req.accept_ids, s->peer_id)) {
        FailIdentity(raw, s->peer_id);
        return;
      }
      SubmitRequest(s, raw);
      Touch(s);
    } else {
      s->waiting.push_back(raw->id);
    }
  }

  void DoServe(ServeCommand cmd) {
    auto sp = std::make_unique<Session>();
    Session* s = sp.get();
    s->id = cmd.session;
    s->worker = this;
    s->inbound = true;
    s->fd = cmd.fd;
    s->identity = std::move(cmd.identity);
    s->local_address = cmd.local_address;
    s->local_port = cmd.local_port;
    s->remote_address = cmd.remote_address;
    s->remote_port = cmd.remote_port;
    s->remote = FormatHostPort(cmd.remote_address, cmd.remote_port);
    s->state = SState::kHandshaking;
    s->deadline_ms = NowMs() + opts_.connect_timeout_ms;
    sessions_[s->id] = std::move(sp);
    owner_->sessions_in++;
    s->ssl = SSL_new(s->identity->server);
    if (s->ssl == nullptr) {
      ERR_clear_error();
      HandshakeFailed(s, HandshakeFailure::kTlsError, "SSL_new failed");
      return;
    }
    UseAnchors(s->ssl, engine_->tls().Anchors());
    SSL_set_fd(s->ssl, s->fd);
    SSL_set_accept_state(s->ssl);
    if (!AddToEpoll(s->fd, Tag(s->id, kTagSession))) {
      HandshakeFailed(s, HandshakeFailure::kTlsError, std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
    HandshakeStep(s);
  }

  void DoRespond(uint64_t id, int status) {
    Stream* st = FindStream(id);
    if (st == nullptr || st->finished || !st->inbound || st->responded || st->attached) return;
    Session* s = st->session;
    if (s->state != SState::kReady) return;
    SubmitFinalStatus(s, st, status);
    engine_->Unregister(st->id);
    Touch(s);
  }

  void DoAttach(uint64_t id, int fd, std::string pending, StreamQos qos) {
    Stream* st = FindStream(id);
    if (st == nullptr || st->finished || st->attached || (st->inbound && st->responded) || !st->reported) {
      // Ended meanwhile (peer reset, session closed): the socket is reset and the stream reported as such.
      ResetAndClose(fd);
      Event ev;
      ev.type = EventType::kDone;
      ev.id = id;
      ev.outcome = "reset";
      ev.side = "tunnel";
      engine_->Emit(std::move(ev));
      engine_->Unregister(id);
      return;
    }
    Session* s = st->session;
    st->attached = true;
    st->fd = fd;
    st->deadline_ms = 0;
    st->qos = std::move(qos);
    if (st->qos.dscp >= 0) MarkDscp(fd, st->qos.dscp);
    if (opts_.fair_share) {
      // One DRR flow per workload and class: a workload's latency and bulk streams each compete in their own class.
      st->flow = FlowId(st->qos.flow + "#" + std::to_string(static_cast<int>(st->qos.priority)));
      st->allowance = 0;
      // The session's reads are scheduled as its first attached workload's, in the best class any stream asked for.
      if (s->flow == 0) {
        s->flow_key = st->qos.flow;
        s->flow = st->flow;
        s->weight = st->qos.weight;
        s->prio = st->qos.priority;
      } else if (st->qos.priority < s->prio) {
        s->prio = st->qos.priority;
        s->flow = FlowId(s->flow_key + "#" + std::to_string(static_cast<int>(s->prio)));
      }
    }
    st->pending = std::move(pending);
    owner_->buffered += static_cast<int64_t>(st->pending.size());
    if (!AddToEpoll(fd, Tag(id, kTagStream))) {
      FdFailed(st, errno);
      return;
    }
    if (st->inbound) {
      st->responded = true;
      nghttp2_nv nv[] = {MakeNv(":status", "200")};
      nghttp2_data_provider prd;
      prd.source.ptr = IdPtr(st->id);
      prd.read_callback = ReadCallback;
      if (nghttp2_submit_response(s->h2, st->h2id, nv, 1, &prd) != 0) {
        FinishStream(st, Outcome::kError, "tunnel", -1, 0, true, NGHTTP2_INTERNAL_ERROR);
        Touch(s);
        return;
      }
    } else if (st->deferred) {
      st->deferred = false;
      nghttp2_session_resume_data(s->h2, st->h2id);
    }
    // Bytes (or END_STREAM) that arrived before the socket did.
    FlushRx(st);
    Touch(s);
  }

  void DoAbort(uint64_t id) {
    Stream* st = FindStream(id);
    if (st == nullptr || st->finished) return;
    Session* s = st->session;
    if (!st->reported && !st->inbound) {
      FailOpen(st, "closed", "aborted");
      return;
    }
    FinishStream(st, Outcome::kAborted, "", -1, 0, true, NGHTTP2_CANCEL);
    if (s) Touch(s);
  }

  void DoCloseAll() {
    std::vector<Session*> all;
    for (auto& [id, s] : sessions_) all.push_back(s.get());
    for (Session* s : all) {
      if (s->state == SState::kClosing || s->state == SState::kClosed) continue;
      if (s->state != SState::kReady) {
        FailWaiting(s, "closed", "the engine was closed (closeAll)", Outcome::kAborted);
        FinalClose(s);
        continue;
      }
      CloseSession(s, "normal", "closeAll", NGHTTP2_NO_ERROR, Outcome::kAborted);
    }
  }

  // Graceful shutdown (agent drain): inbound sessions get GOAWAY NO_ERROR naming the last stream they started, so
  // peers open new streams elsewhere while the ones in flight finish (nghttp2 then wants nothing more and Service()
  // closes the session); pooled outbound sessions take no new stream and close after their last.
  void DoDrain() {
    std::vector<Session*> ready;
    for (auto& [id, s] : sessions_)
      if (s->state == SState::kReady && s->h2) ready.push_back(s.get());
    for (Session* s : ready) {
      if (s->inbound) {
        if (s->drain_goaway_sent) continue;
        s->drain_goaway_sent = true;
        nghttp2_submit_goaway(s->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->h2), NGHTTP2_NO_ERROR, nullptr, 0);
        Touch(s);
      } else {
        Retire(s, "normal");
      }
    }
  }

  void DoRetireSource(const std::string& source_id) {
    std::vector<Session*> hit;
    for (auto& [id, s] : sessions_)
      if (!s->inbound && s->source_id == source_id && !s->retired) hit.push_back(s.get());
    for (Session* s : hit) Retire(s, "rotated");
  }

 private:
  // --- loop ---

  void Run() {
    constexpr int kMaxEvents = 128;
    epoll_event events[kMaxEvents];
    int64_t next_tick = NowMs() + kTickMs;
    int64_t next_wake_ns = 0;
    while (!stop_.load()) {
      int timeout = -1;
      if (!sessions_.empty()) timeout = static_cast<int>(std::max<int64_t>(0, next_tick - NowMs()));
      next_wake_ns = EarliestWake();
      if (next_wake_ns != 0) {
        int64_t ms = std::max<int64_t>(0, (next_wake_ns - NowNs() + 999999) / 1000000);
        if (timeout < 0 || ms < timeout) timeout = static_cast<int>(ms);
      }
      if (!sched_.empty()) timeout = 0;
      int n = epoll_wait(epfd_, events, kMaxEvents, timeout);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        uint64_t kind = tag & 3;
        uint64_t id = tag >> 2;
        if (kind == kTagWake) {
          uint64_t v;
          ssize_t got = read(wakefd_, &v, sizeof(v));
          (void)got;
          TakeCommands();
        } else if (kind == kTagSession) {
          Session* s = FindSession(id);
          if (s) OnSessionIo(s, events[i].events);
        } else if (kind == kTagStream) {
          Stream* st = FindStream(id);
          if (st && !st->finished) OnFdIo(st, events[i].events);
        }
        ProcessTouched();
      }
      if (!throttled_.empty()) {
        WakeThrottled(NowNs());
        ProcessTouched();
      }
      if (!sched_.empty()) {
        ServeReady();
        ProcessTouched();
      }
      int64_t now = NowMs();
      if (now >= next_tick) {
        Tick(now);
        ProcessTouched();
        next_tick = now + kTickMs;
      }
      graveyard_streams_.clear();
      for (auto& s : graveyard_sessions_) FreeSession(*s);
      graveyard_sessions_.clear();
    }
  }

  void TakeCommands() {
    std::vector<std::function<void(WorkerImpl&)>> cmds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cmds.swap(commands_);
    }
    for (auto& c : cmds) {
      c(*this);
      ProcessTouched();
    }
  }

  void Tick(int64_t now) {
    std::vector<Session*> all;
    all.reserve(sessions_.size());
    for (auto& [id, s] : sessions_) all.push_back(s.get());
    for (Session* s : all) {
      switch (s->state) {
        case SState::kConnecting:
          if (now >= s->deadline_ms) {
            FailWaiting(s, "timeout", "TCP connect to " + s->remote + " timed out after " + std::to_string(opts_.connect_timeout_ms) + " ms", Outcome::kError);
            FinalClose(s);
          }
          break;
        case SState::kHandshaking:
          if (now >= s->deadline_ms) HandshakeFailed(s, HandshakeFailure::kTimeout, "no TLS handshake in " + std::to_string(opts_.connect_timeout_ms) + " ms");
          break;
        case SState::kClosing:
          if (now >= s->deadline_ms) FinalClose(s);
          break;
        case SState::kReady:
          if (!s->inbound && s->active == 0 && s->waiting.empty() && now - s->idle_since >= opts_.idle_timeout_ms) {
            CloseSession(s, "idle", "no stream for " + std::to_string(opts_.idle_timeout_ms) + " ms", NGHTTP2_NO_ERROR, Outcome::kError);
            break;
          }
          if (now >= s->next_check) {
            s->next_check = now + opts_.liveness_check_ms;
            if (s->bytes_read != s->seen_read || s->bytes_written != s->seen_written) {
              s->seen_read = s->bytes_read;
              s->seen_written = s->bytes_written;
            } else if (s->ping_outstanding && sched_.Contains(s->id)) {
              // Not read because the scheduler served others first (strict priority): not the peer's fault.
            } else if (s->ping_outstanding) {
              CloseSession(s, "unresponsive", "nothing read and no PING answer for " + std::to_string(opts_.liveness_check_ms) + " ms", -1, Outcome::kError);
            } else {
              s->ping_outstanding = true;
              nghttp2_submit_ping(s->h2, NGHTTP2_FLAG_NONE, nullptr);
              Touch(s);
            }
          }
          break;
        case SState::kClosed: break;
      }
    }
    std::vector<Stream*> late;
    for (auto& [id, st] : streams_)
      if (st->deadline_ms != 0 && now >= st->deadline_ms && !st->finished) late.push_back(st.get());
    for (Stream* st : late) {
      if (st->finished) continue;
      Session* s = st->session;
      if (!st->inbound && !st->reported) {
        FailOpen(st, "timeout",
                 "no answer to CONNECT " + st->req.authority + " via " + FormatHostPort(st->req.host, st->req.port) + " in " +
                     std::to_string(opts_.connect_timeout_ms) + " ms");
      } else if (st->inbound && !st->responded && !st->attached) {
        FinishStream(st, Outcome::kAborted, "", -1, 0, true, NGHTTP2_CANCEL);
      } else if (st->inbound && st->responded && !st->attached) {
        if (s && s->state == SState::kReady && !st->h2_closed) nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->h2id, NGHTTP2_CANCEL);
        DropStream(st);
      } else {
        st->deadline_ms = 0;
      }
      if (s) Touch(s);
    }
  }

  // --- outbound sessions ---

  static bool Accepts(const std::vector<std::string>& ids, const std::string& peer) {
    if (peer.empty()) return false;
    return std::find(ids.begin(), ids.end(), peer) != ids.end();
  }

  uint32_t Limit(const Session* s) const { return std::min<uint32_t>(opts_.max_concurrent_streams, s->peer_max_streams); }

  Session* FindPooled(const std::string& key) {
    auto it = pool_.find(key);
    if (it == pool_.end()) return nullptr;
    for (Session* s : it->second) {
      if (s->retired || s->goaway_received) continue;
      if (s->state != SState::kConnecting && s->state != SState::kHandshaking && s->state != SState::kReady) continue;
      if (s->active < Limit(s)) return s;
    }
    return nullptr;
  }

  void RemoveFromPool(Session* s) {
    if (s->inbound || s->key.empty()) return;
    auto it = pool_.find(s->key);
    if (it == pool_.end()) return;
    auto& v = it->second;
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    if (v.empty()) pool_.erase(it);
  }

  Session* Connect(const std::string& key, const OpenCommand& req, std::shared_ptr<TlsIdentity> identity, std::string* err) {
    sockaddr_storage ss{};
    socklen_t sl = 0;
    std::string host = req.host;
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &s4->sin_addr) == 1) {
      s4->sin_family = AF_INET;
      s4->sin_port = htons(static_cast<uint16_t>(req.port));
      sl = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, host.c_str(), &s6->sin6_addr) == 1) {
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(static_cast<uint16_t>(req.port));
      sl = sizeof(sockaddr_in6);
    } else {
      *err = "HBONE host " + req.host + " is not an IP address";
      return nullptr;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *err = std::string("socket: ") + std::strerror(errno);
      return nullptr;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (req.dscp >= 0) MarkDscp(fd, req.dscp);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), sl);
    if (rc < 0 && errno != EINPROGRESS) {
      int e = errno;
      close(fd);
      *err = "cannot connect to " + FormatHostPort(host, req.port) + ": " + std::strerror(e);
      return nullptr;
    }
    SSL* ssl = SSL_new(identity->client);
    if (ssl == nullptr) {
      ERR_clear_error();
      close(fd);
      *err = "SSL_new failed";
      return nullptr;
    }
    auto sp = std::make_unique<Session>();
    Session* s = sp.get();
    s->id = engine_->NextId();
    s->worker = this;
    s->inbound = false;
    s->fd = fd;
    s->ssl = ssl;
    s->identity = std::move(identity);
    s->key = key;
    s->source_id = req.source_id;
    s->accept_ids = req.accept_ids;
    s->remote = FormatHostPort(host, req.port);
    s->remote_address = host;
    s->remote_port = req.port;
    s->state = rc == 0 ? SState::kHandshaking : SState::kConnecting;
    s->deadline_ms = NowMs() + opts_.connect_timeout_ms;
    UseAnchors(ssl, engine_->tls().Anchors());
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);  // no SNI: SSL_set_tlsext_host_name is never called
    sessions_[s->id] = std::move(sp);
    owner_->sessions_out++;
    pool_[key].push_back(s);
    if (!AddToEpoll(fd, Tag(s->id, kTagSession))) {
      *err = std::string("epoll_ctl: ") + std::strerror(errno);
      RemoveFromPool(s);
      FinalClose(s);
      return nullptr;
    }
    return s;
  }

  void SubmitRequest(Session* s, Stream* st) {
    std::vector<nghttp2_nv> nv;
    nv.push_back(MakeNv(":method", "CONNECT"));
    nv.push_back(MakeNv(":authority", st->req.authority));
    for (auto& [k, v] : st->req.headers) nv.push_back(MakeNv(k, v));
    nghttp2_data_provider prd;
    prd.source.ptr = IdPtr(st->id);
    prd.read_callback = ReadCallback;
    int32_t h2id = nghttp2_submit_request(s->h2, nullptr, nv.data(), nv.size(), &prd, IdPtr(st->id));
    if (h2id < 0) {
      FailOpen(st, "protocol", std::string("cannot submit CONNECT: ") + nghttp2_strerror(h2id));
      return;
    }
    st->h2id = h2id;
  }

  void FailIdentity(Stream* st, const std::string& peer) {
    std::string msg = "HBONE server " + FormatHostPort(st->req.host, st->req.port) + " presented " +
                      (peer.empty() ? std::string("no SPIFFE id") : "SPIFFE id " + peer) + ", expected " +
                      (st->req.accept_ids.empty() ? std::string("(none)") : st->req.accept_ids[0]);
    FailOpen(st, "identity", msg, peer.empty() ? nullptr : &peer);
  }

  // An outbound open that never got its 200: reported once, the stream forgotten (reset on the wire if it was sent).
  void FailOpen(Stream* st, const char* kind, const std::string& message, const std::string* peer = nullptr, int status = 0) {
    if (st->finished) return;
    Event ev;
    ev.type = EventType::kOpen;
    ev.id = st->id;
    ev.ok = false;
    ev.kind = kind;
    ev.status = status;
    ev.message = message;
    if (peer) {
      ev.peer_id = *peer;
      ev.has_peer_id = true;
    }
    engine_->Emit(std::move(ev));
    Session* s = st->session;
    if (s && s->state == SState::kReady && st->h2id > 0 && !st->h2_closed) nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->h2id, NGHTTP2_CANCEL);
    DropStream(st);
    if (s) Touch(s);
  }

  // Every open waiting for this session's handshake fails the same way.
  void FailWaiting(Session* s, const char* kind, const std::string& message, Outcome outcome) {
    std::vector<uint64_t> ids(s->streams.begin(), s->streams.end());
    for (uint64_t id : ids) {
      Stream* st = FindStream(id);
      if (!st || st->finished) continue;
      if (!st->inbound && !st->reported)
        FailOpen(st, kind, message);
      else
        FinishStream(st, outcome, "tunnel", -1, 0, false, 0);
    }
    s->waiting.clear();
  }

  void Retire(Session* s, const char* reason) {
    if (s->retired) return;
    s->retired = true;
    s->retire_reason = reason;
    RemoveFromPool(s);
    Touch(s);
  }

  // --- handshake ---

  void OnSessionIo(Session* s, uint32_t events) {
    switch (s->state) {
      case SState::kConnecting: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
        if (err != 0) {
          FailWaiting(s, "connect",
                      "cannot connect to " + s->remote + ": " + std::strerror(err) + "; is the agent running there, or is a firewall blocking the port?",
                      Outcome::kError);
          FinalClose(s);
          return;
        }
        if (!(events & EPOLLOUT)) return;
        s->state = SState::kHandshaking;
        HandshakeStep(s);
        return;
      }
      case SState::kHandshaking: HandshakeStep(s); return;
      case SState::kReady:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
          // Fair share: what the session brings in is read in the scheduler's order (ServeReady), like socket reads.
          if (opts_.fair_share && s->flow != 0)
            sched_.Ready(s->id, s->flow, s->prio, s->weight);
          else
            ReadTls(s);
        }
        Touch(s);
        return;
      case SState::kClosing:
        if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) DrainClosing(s);
        Touch(s);
        return;
      case SState::kClosed: return;
    }
  }

  void HandshakeStep(Session* s) {
    if (s->inbound && !s->peeked) {
      unsigned char b = 0;
      ssize_t n = recv(s->fd, &b, 1, MSG_PEEK);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
      if (n <= 0) {
        HandshakeFailed(s, HandshakeFailure::kTlsError,
                        n == 0 ? "the peer closed the connection before a TLS ClientHello" : std::string("recv: ") + std::strerror(errno));
        return;
      }
      s->peeked = true;
      if (b != 0x16) {  // not a TLS handshake record
        char detail[96];
        snprintf(detail, sizeof(detail), "first byte 0x%02x is not a TLS handshake record", b);
        HandshakeFailed(s, HandshakeFailure::kNotTls, detail);
        return;
      }
    }
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(s->ssl);
    if (rc == 1) {
      HandshakeDone(s);
      return;
    }
    int saved = errno;
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    std::string detail;
    HandshakeFailure f = ClassifyHandshakeError(s->ssl, e, saved, &detail);
    HandshakeFailed(s, f, detail);
  }

  void HandshakeFailed(Session* s, HandshakeFailure f, const std::string& detail) {
    Event ev;
    ev.type = EventType::kSession;
    ev.id = s->id;
    ev.session_type = "handshake_failed";
    ev.inbound = s->inbound;
    ev.reason = HandshakeFailureName(f);
    ev.remote = s->remote;
    ev.detail = detail;
    engine_->Emit(std::move(ev));
    if (!s->inbound) {
      const char* kind = f == HandshakeFailure::kTimeout ? "timeout" : "tls";
      FailWaiting(
          s, kind,
          "HBONE TLS handshake with " + s->remote + " failed (" + HandshakeFailureName(f) + "): " + detail + "; check both sides trust the same mesh root",
          Outcome::kError);
    }
    FinalClose(s);
  }

  void HandshakeDone(Session* s) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || alpn[0] != 'h' || alpn[1] != '2') {
      HandshakeFailed(s, HandshakeFailure::kNoAlpnH2, s->inbound ? "the client did not negotiate ALPN h2" : "the server did not negotiate ALPN h2");
      return;
    }
    s->peer_id = PeerSpiffeId(s->ssl);
    if (!s->inbound && !Accepts(s->accept_ids, s->peer_id)) {
      std::vector<uint64_t> ids(s->streams.begin(), s->streams.end());
      for (uint64_t id : ids) {
        Stream* st = FindStream(id);
        if (st && !st->finished) FailIdentity(st, s->peer_id);
      }
      s->waiting.clear();
      FinalClose(s);
      return;
    }
    nghttp2_session* h2 = nullptr;
    nghttp2_option* opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = s->inbound ? nghttp2_session_server_new2(&h2, Callbacks(), s, opt) : nghttp2_session_client_new2(&h2, Callbacks(), s, opt);
    nghttp2_option_del(opt);
    if (rv != 0) {
      HandshakeFailed(s, HandshakeFailure::kTlsError, std::string("nghttp2 session: ") + nghttp2_strerror(rv));
      return;
    }
    s->h2 = h2;
    std::vector<nghttp2_settings_entry> iv;
    if (s->inbound) {
      iv.push_back({NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts_.max_concurrent_streams});
      iv.push_back({NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(kMaxRequestHeaderBytes)});
    } else {
      iv.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
    }
    iv.push_back({NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(opts_.stream_window)});
    nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
    nghttp2_session_set_local_window_size(h2, NGHTTP2_FLAG_NONE, 0, opts_.connection_window);
    s->state = SState::kReady;
    s->handshake_done = true;
    int64_t now = NowMs();
    s->deadline_ms = 0;
    s->idle_since = now;
    s->next_check = now + opts_.liveness_check_ms;
    s->early_window_start = now;
    if (!s->inbound) {
      std::vector<uint64_t> waiting;
      waiting.swap(s->waiting);
      for (uint64_t id : waiting) {
        Stream* st = FindStream(id);
        if (!st || st->finished) continue;
        if (!Accepts(st->req.accept_ids, s->peer_id)) {
          FailIdentity(st, s->peer_id);
          continue;
        }
        SubmitRequest(s, st);
      }
    }
    // Records may already sit in OpenSSL's buffer (read ahead with the handshake): no epoll edge will announce them.
    ReadTls(s);
    Touch(s);
  }

  // --- TLS I/O ---

  // Reads and processes TLS records until the socket has no more or `budget` plaintext bytes were read (then
  // *capped: the session may hold more); *used counts them.
  void ReadTls(Session* s, uint64_t budget = UINT64_MAX, uint64_t* used = nullptr, bool* capped = nullptr) {
    while (s->state == SState::kReady) {
      if (budget == 0) {
        if (capped) *capped = true;
        return;
      }
      ERR_clear_error();
      errno = 0;
      int n = SSL_read(s->ssl, rbuf_.data(), static_cast<int>(std::min<uint64_t>(rbuf_.size(), budget)));
      if (n > 0) {
        budget -= std::min<uint64_t>(budget, static_cast<uint64_t>(n));
        if (used) *used += static_cast<uint64_t>(n);
        s->bytes_read += static_cast<uint64_t>(n);
        ssize_t rv = nghttp2_session_mem_recv(s->h2, reinterpret_cast<const uint8_t*>(rbuf_.data()), static_cast<size_t>(n));
        ProcessDeferred();
        if (s->state != SState::kReady) return;
        if (rv < 0) {
          LibraryError(s, static_cast<int>(rv));
          return;
        }
        if (s->close_pending) {
          CarryOutPendingClose(s);
          return;
        }
        continue;
      }
      int saved = errno;
      int e = SSL_get_error(s->ssl, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && saved == 0 && ERR_peek_error() == 0)) {
        ERR_clear_error();
        CloseSession(s, "peer_closed", "the peer closed the connection", -1, Outcome::kError);
        return;
      }
      std::string detail;
      if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
        detail = std::string("socket: ") + std::strerror(saved);
      } else {
        char buf[256];
        unsigned long err = ERR_get_error();
        ERR_error_string_n(err, buf, sizeof(buf));
        detail = std::string("TLS: ") + buf;
      }
      ERR_clear_error();
      CloseSession(s, "io_error", detail, -1, Outcome::kError);
      return;
    }
  }

  // After a GOAWAY of ours, whatever the peer still sends is read and dropped so that close() does not turn into RST
  // before the GOAWAY left.
  void DrainClosing(Session* s) {
    for (int i = 0; i < 64; i++) {
      ERR_clear_error();
      int n = SSL_read(s->ssl, rbuf_.data(), static_cast<int>(rbuf_.size()));
      if (n > 0) continue;
      int e = SSL_get_error(s->ssl, n);
      ERR_clear_error();
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      FinalClose(s);
      return;
    }
  }

  // nghttp2 refused input outright (flood, bad preface, ...): GOAWAY with the code RFC 9113 asks for, then close.
  void LibraryError(Session* s, int rv) {
    uint32_t code = NGHTTP2_PROTOCOL_ERROR;
    const char* reason = "protocol_error";
    switch (rv) {
      case NGHTTP2_ERR_FLOODED:
      case NGHTTP2_ERR_TOO_MANY_SETTINGS: code = NGHTTP2_ENHANCE_YOUR_CALM; break;
      case NGHTTP2_ERR_FLOW_CONTROL: code = NGHTTP2_FLOW_CONTROL_ERROR; break;
      case NGHTTP2_ERR_FRAME_SIZE_ERROR: code = NGHTTP2_FRAME_SIZE_ERROR; break;
      case NGHTTP2_ERR_HEADER_COMP: code = NGHTTP2_COMPRESSION_ERROR; break;
      default:
        if (rv == -905 /* NGHTTP2_ERR_TOO_MANY_CONTINUATIONS, nghttp2 >= 1.61 */) code = NGHTTP2_ENHANCE_YOUR_CALM;
        break;
    }
    CloseSession(s, reason, std::string("HTTP/2: ") + nghttp2_strerror(rv), static_cast<int>(code), Outcome::kError);
  }

  void CarryOutPendingClose(Session* s) {
    s->close_pending = false;
    CloseSession(s, s->close_reason ? s->close_reason : "protocol_error", s->close_detail, s->close_goaway, Outcome::kError);
  }

  // Writes what is buffered, then gathers more frames from nghttp2 until it has none or the socket is full.
  // Returns true when everything is written and nghttp2 has nothing more to send.
  bool Flush(Session* s) {
    for (;;) {
      if (s->state != SState::kReady && s->state != SState::kClosing) return true;
      if (s->out_off < s->out.size()) {
        ERR_clear_error();
        errno = 0;
        size_t len = s->out.size() - s->out_off;
        int n = SSL_write(s->ssl, s->out.data() + s->out_off, static_cast<int>(len));
        if (n > 0) {
          s->out_off += static_cast<size_t>(n);
          s->bytes_written += static_cast<uint64_t>(n);
          owner_->buffered -= n;
          continue;
        }
        int saved = errno;
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return false;
        ERR_clear_error();
        if (s->state == SState::kClosing) {
          FinalClose(s);
        } else {
          CloseSession(s, "io_error", std::string("write: ") + (saved ? std::strerror(saved) : "TLS error"), -1, Outcome::kError);
        }
        return true;
      }
      owner_->buffered -= static_cast<int64_t>(s->out.size() - s->out_off);
      s->out.clear();
      s->out_off = 0;
      if (s->h2 == nullptr) return true;
      while (s->out.size() < kTlsOutTarget) {
        const uint8_t* p = nullptr;
        ssize_t n = nghttp2_session_mem_send(s->h2, &p);
        if (n < 0) {
          ProcessDeferred();
          if (s->state == SState::kReady)
            CloseSession(s, "protocol_error", std::string("HTTP/2 send: ") + nghttp2_strerror(static_cast<int>(n)), -1, Outcome::kError);
          else
            FinalClose(s);
          return true;
        }
        if (n == 0) break;
        s->out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        owner_->buffered += n;
      }
      bool any = ProcessDeferred();
      if (s->out.empty() && !any) return true;
    }
  }

  // --- per-session upkeep after any change ---

  void Touch(Session* s) {
    if (s->state != SState::kClosed) touched_.insert(s->id);
  }

  void ProcessTouched() {
    int rounds = 0;
    while (!touched_.empty() && rounds++ < 64) {
      std::vector<uint64_t> ids(touched_.begin(), touched_.end());
      touched_.clear();
      for (uint64_t id : ids) {
        Session* s = FindSession(id);
        if (s) Service(s);
      }
    }
  }

  void Service(Session* s) {
    if (s->state == SState::kReady) {
      if (s->close_pending) {
        CarryOutPendingClose(s);
      } else if (!s->inbound && s->retired && s->active == 0 && s->waiting.empty()) {
        CloseSession(s, s->retire_reason,
                     s->retire_reason == std::string("rotated") ? "certificate rotated"
                     : s->goaway_received                       ? "peer sent GOAWAY"
                                                                : "drained",
                     NGHTTP2_NO_ERROR, Outcome::kError);
      }
    }
    if (s->state != SState::kReady && s->state != SState::kClosing) return;
    bool drained = Flush(s);
    if (s->state == SState::kReady && drained && s->h2 && !nghttp2_session_want_read(s->h2) && !nghttp2_session_want_write(s->h2)) {
      if (s->goaway_sent_code != 0)
        CloseSession(s, "protocol_error", "sent GOAWAY " + std::string(nghttp2_http2_strerror(s->goaway_sent_code)), -1, Outcome::kError);
      else
        CloseSession(s, s->goaway_received ? "peer_closed" : "normal", s->goaway_received ? "peer sent GOAWAY" : "", -1, Outcome::kError);
      return;
    }
    if (s->state == SState::kClosing && drained) FinalClose(s);
  }

  // Ends an established session: GOAWAY `goaway` (when >= 0) flushed within a bounded grace, every stream ended.
  void CloseSession(Session* s, const char* reason, const std::string& detail, int goaway, Outcome outcome) {
    if (s->state == SState::kClosing || s->state == SState::kClosed) return;
    bool established = s->state == SState::kReady;
    RemoveFromPool(s);
    if (established && s->h2 && goaway >= 0) nghttp2_session_terminate_session(s->h2, static_cast<uint32_t>(goaway));
    s->state = SState::kClosing;
    std::vector<uint64_t> ids(s->streams.begin(), s->streams.end());
    for (uint64_t id : ids) {
      Stream* st = FindStream(id);
      if (!st || st->finished) continue;
      if (!st->inbound && !st->reported) {
        bool tls = !s->got_frame;
        FailOpen(st, tls ? "tls" : "closed",
                 "HBONE session to " + s->remote + " closed before the CONNECT was answered: " + (detail.empty() ? reason : detail));
      } else {
        FinishStream(st, outcome, "tunnel", goaway > 0 ? goaway : -1, 0, false, 0);
      }
    }
    s->waiting.clear();
    if (established) {
      Event ev;
      ev.type = EventType::kSession;
      ev.id = s->id;
      ev.session_type = "session_closed";
      ev.inbound = s->inbound;
      ev.reason = reason;
      ev.remote = s->remote;
      ev.detail = detail;
      engine_->Emit(std::move(ev));
    }
    if (!established || goaway < 0) {
      FinalClose(s);
      return;
    }
    s->deadline_ms = NowMs() + std::min<int64_t>(kMaxCloseGraceMs, std::max<int64_t>(opts_.liveness_check_ms, 100));
    Touch(s);
  }

  void FinalClose(Session* s) {
    if (s->state == SState::kClosed) return;
    if (s->state != SState::kClosing) {
      // Not established (or dying at once): its streams end here.
      s->state = SState::kClosing;
      RemoveFromPool(s);
      std::vector<uint64_t> ids(s->streams.begin(), s->streams.end());
      for (uint64_t id : ids) {
        Stream* st = FindStream(id);
        if (!st || st->finished) continue;
        if (!st->inbound && !st->reported)
          FailOpen(st, "closed", "HBONE session to " + s->remote + " closed");
        else
          FinishStream(st, Outcome::kError, "tunnel", -1, 0, false, 0);
      }
    }
    s->state = SState::kClosed;
    sched_.Remove(s->id);
    if (s->fd >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, s->fd, nullptr);
    if (s->ssl && s->handshake_done) {
      ERR_clear_error();
      SSL_shutdown(s->ssl);  // best effort close_notify; never waits
      ERR_clear_error();
    }
    if (s->inbound)
      owner_->sessions_in--;
    else
      owner_->sessions_out--;
    owner_->buffered -= static_cast<int64_t>(s->out.size() - s->out_off);
    s->out_off = s->out.size();
    touched_.erase(s->id);
    auto it = sessions_.find(s->id);
    if (it != sessions_.end()) {
      graveyard_sessions_.push_back(std::move(it->second));
      sessions_.erase(it);
    }
  }

  void FreeSession(Session& s) {
    if (s.h2) {
      nghttp2_session_del(s.h2);
      s.h2 = nullptr;
    }
    if (s.ssl) {
      SSL_free(s.ssl);
      s.ssl = nullptr;
    }
    CloseFd(s.fd);
  }

  // --- streams ---

  static nghttp2_nv MakeNv(const std::string& name, const std::string& value) {
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
    nv.namelen = name.size();
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
    nv.valuelen = value.size();
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    return nv;
  }
  // Name and value must outlive the submit call: never a temporary std::string.
  static nghttp2_nv MakeNv(const char* name, const std::string& value) {
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name));
    nv.namelen = std::strlen(name);
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
    nv.valuelen = value.size();
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    return nv;
  }
  static nghttp2_nv MakeNv(const char* name, const char* value) {
    nghttp2_nv nv;
    nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name));
    nv.namelen = std::strlen(name);
    nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value));
    nv.valuelen = std::strlen(value);
    nv.flags = NGHTTP2_NV_FLAG_NONE;
    return nv;
  }

  // A final non-200 answer: HEADERS with END_STREAM. The stream stays (its DATA dropped) until the client ends or
  // resets it, at most connectTimeoutMs, then it is reset: an RST_STREAM(NO_ERROR) right behind the HEADERS would be
  // allowed (RFC 9113 §8.1), but node:http2 clients then report the close before the response.
  void SubmitFinalStatus(Session* s, Stream* st, int status) {
    std::string code = std::to_string(status);
    nghttp2_nv nv[] = {MakeNv(":status", code)};
    nghttp2_submit_response(s->h2, st->h2id, nv, 1, nullptr);
    st->responded = true;
    st->deadline_ms = NowMs() + opts_.connect_timeout_ms;
  }

  // Forgets a stream without reporting anything: returns its unconsumed window, closes its socket, updates the
  // session's stream accounting.
  void DropStream(Stream* st) {
    if (st->finished && !streams_.count(st->id)) return;
    st->finished = true;
    sched_.Remove(st->id);
    Session* s = st->session;
    if (s && s->h2 && st->unconsumed > 0 && (s->state == SState::kReady || s->state == SState::kClosing)) {
      nghttp2_session_consume_connection(s->h2, static_cast<size_t>(st->unconsumed));
    }
    st->unconsumed = 0;
    if (st->fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, st->fd, nullptr);
      ResetAndClose(st->fd);
    }
    owner_->buffered -= static_cast<int64_t>(st->rx.size() + (st->pending.size() - st->pending_off));
    st->rx.Release();
    engine_->Unregister(st->id);
    if (st->inbound)
      owner_->streams_in--;
    else
      owner_->streams_out--;
    if (s) {
      s->streams.erase(st->id);
      s->waiting.erase(std::remove(s->waiting.begin(), s->waiting.end(), st->id), s->waiting.end());
      if (!st->inbound && s->active > 0) {
        s->active--;
        if (s->active == 0) s->idle_since = NowMs();
      }
      Touch(s);
    }
    auto it = streams_.find(st->id);
    if (it != streams_.end()) {
      graveyard_streams_.push_back(std::move(it->second));
      streams_.erase(it);
    }
  }

  // Ends a reported stream: its socket closed (FIN for eof, RST otherwise), RST_STREAM `rst` sent when `notify`, and
  // JS told (done when attached, ended otherwise).
  void FinishStream(Stream* st, Outcome outcome, const char* side, int64_t h2code, int err, bool notify, uint32_t rst) {
    if (st->finished) return;
    Session* s = st->session;
    if (notify && s && s->state == SState::kReady && s->h2 && st->h2id > 0 && !st->h2_closed)
      nghttp2_submit_rst_stream(s->h2, NGHTTP2_FLAG_NONE, st->h2id, rst);
    if (st->fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, st->fd, nullptr);
      if (outcome == Outcome::kEof)
        CloseFd(st->fd);
      else
        ResetAndClose(st->fd);
    }
    if (st->attached || (st->reported && !st->responded)) {
      Event ev;
      ev.type = st->attached ? EventType::kDone : EventType::kEnded;
      ev.id = st->id;
      ev.sent = st->counters ? st->counters->sent.load() : 0;
      ev.received = st->counters ? st->counters->received.load() : 0;
      ev.outcome = OutcomeName(outcome);
      if (side && *side) ev.side = side;
      ev.h2_code = h2code;
      ev.err = err;
      engine_->Emit(std::move(ev));
    }
    DropStream(st);
  }

  void FdFailed(Stream* st, int err) {
    Outcome o = (err == ECONNRESET || err == EPIPE || err == ECONNABORTED) ? Outcome::kReset : Outcome::kError;
    // RFC 9113 §8.5: a TCP error on a CONNECT tunnel is signalled with CONNECT_ERROR.
    FinishStream(st, o, "fd", -1, err, true, NGHTTP2_CONNECT_ERROR);
  }

  // Failures found inside nghttp2 callbacks, acted on after them.
  bool ProcessDeferred() {
    if (deferred_failures_.empty()) return false;
    std::vector<std::pair<uint64_t, int>> list;
    list.swap(deferred_failures_);
    for (auto& [id, err] : list) {
      Stream* st = FindStream(id);
      if (st && !st->finished) FdFailed(st, err);
    }
    return true;
  }

  void OnFdIo(Stream* st, uint32_t events) {
    Session* s = st->session;
    if (events & EPOLLERR) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(st->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        FdFailed(st, err);
        return;
      }
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) && st->deferred && s && s->state == SState::kReady && st->send_wake_ns == 0) {
      if (opts_.fair_share) {
        sched_.Ready(st->id, st->flow, st->qos.priority, st->qos.weight);
      } else {
        st->deferred = false;
        nghttp2_session_resume_data(s->h2, st->h2id);
      }
    }
    if ((events & (EPOLLOUT | EPOLLHUP)) && st->receive_wake_ns == 0) FlushRx(st);
    if (s) Touch(s);
  }

  // Tunnel → socket: writes what is buffered, returns the window for what the socket took, half-closes after
  // END_STREAM once everything is written.
  void FlushRx(Stream* st) {
    if (!st->attached || st->fd < 0 || st->finished) return;
    size_t total = 0;
    int64_t now = st->qos.receive_limit ? NowNs() : 0;
    while (!st->rx.empty()) {
      size_t want = st->rx.size();
      if (st->qos.receive_limit) {
        uint64_t avail = st->qos.receive_limit->Available(now);
        if (avail < MinGrant(*st->qos.receive_limit, want)) {
          PauseReceive(st, now, st->rx.size());
          break;
        }
        if (avail < want) want = static_cast<size_t>(avail);
      }
      ssize_t n = send(st->fd, st->rx.data(), want, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0 && st->qos.receive_limit) ChargeReceive(st, static_cast<uint64_t>(n), now);
      if (n > 0) {
        st->rx.Consume(static_cast<size_t>(n));
        total += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      int err = n < 0 ? errno : EIO;
      Credit(st, total);
      FdFailed(st, err);
      return;
    }
    Credit(st, total);
    MaybeShutWrite(st);
  }

  void Credit(Stream* st, size_t n) {
    if (n == 0) return;
    st->counters->received.fetch_add(n, std::memory_order_relaxed);
    if (st->qos.stats) st->qos.stats->received.fetch_add(n, std::memory_order_relaxed);
    owner_->buffered -= static_cast<int64_t>(n);
    st->unconsumed -= std::min<uint64_t>(st->unconsumed, n);
    Session* s = st->session;
    if (s && s->h2 && s->state == SState::kReady) nghttp2_session_consume(s->h2, st->h2id, n);
  }

  void MaybeShutWrite(Stream* st) {
    if (!st->attached || st->fd < 0 || !st->rx_end || !st->rx.empty() || st->fd_shut_wr) {
      CheckDone(st);
      return;
    }
    if (shutdown(st->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
      int err = errno;
      FdFailed(st, err);
      return;
    }
    st->fd_shut_wr = true;
    CheckDone(st);
  }

  void CheckDone(Stream* st) {
    if (st->finished || !st->attached) return;
    if (st->h2_closed && st->h2_error == 0 && !st->rst_received && st->rx.empty() && st->fd_shut_wr && st->es_sent)
      FinishStream(st, Outcome::kEof, "", -1, 0, false, 0);
  }

  // --- QoS ---

  static void MarkDscp(int fd, int dscp) {
    sockaddr_storage ss{};
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &sl) < 0) return;
    int tos = dscp << 2;  // DSCP is the upper six bits of the TOS / traffic class byte
    if (ss.ss_family == AF_INET)
      setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
    else if (ss.ss_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof(tos));
      setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));  // v4-mapped peers
    }
  }

  uint32_t FlowId(const std::string& key) {
    auto it = flow_ids_.find(key);
    if (it != flow_ids_.end()) return it->second;
    uint32_t id = static_cast<uint32_t>(flow_ids_.size() + 1);
    flow_ids_.emplace(key, id);
    return id;
  }

  void ChargeReceive(Stream* st, uint64_t n, int64_t now) {
    st->qos.receive_limit->Consume(n, now);
    if (st->receive_waited) st->qos.receive_limit->NoteDelayed(n);
  }

  // Over bytes/s towards the socket: what arrived stays in rx (its window is not returned, so the peer stops sending)
  // until the timer in Run flushes it.
  void PauseReceive(Stream* st, int64_t now, uint64_t waiting) {
    if (st->receive_wake_ns != 0) return;
    st->receive_wake_ns = now + std::max<int64_t>(st->qos.receive_limit->WaitNs(MinGrant(*st->qos.receive_limit, waiting), now), 1000000);
    st->receive_waited = true;
    st->qos.receive_limit->NoteThrottle(waiting, MinGrant(*st->qos.receive_limit, waiting), now);
    throttled_.push_back(st->id);
  }

  // The least a limited side moves at once: a whole DATA frame (16 KiB), or what is asked if less, or the burst if
  // smaller. Reading whatever crumb the bucket had earned (often a few hundred bytes when the bucket runs near empty)
  // sent one DATA frame and TLS record per crumb: the worker drowned in framing and a 100 Mbit/s limit delivered
  // 40-65 Mbit/s without ever pausing. Waiting for a whole chunk costs nothing in rate (the bucket keeps earning).
  static uint64_t MinGrant(const qos::ByteLimits& b, uint64_t want) { return std::min<uint64_t>({want, 16384, b.burst()}); }

  int64_t EarliestWake() {
    int64_t next = 0;
    for (uint64_t id : throttled_) {
      Stream* st = FindStream(id);
      if (st == nullptr || st->finished) continue;
      if (st->send_wake_ns != 0) next = next == 0 ? st->send_wake_ns : std::min(next, st->send_wake_ns);
      if (st->receive_wake_ns != 0) next = next == 0 ? st->receive_wake_ns : std::min(next, st->receive_wake_ns);
    }
    return next;
  }

  // Resumes the sides whose bucket has refilled; returns the earliest wake-up still pending (0: none).
  int64_t WakeThrottled(int64_t now) {
    std::vector<uint64_t> list;
    list.swap(throttled_);
    for (uint64_t id : list) {
      Stream* st = FindStream(id);
      if (st == nullptr || st->finished) continue;
      if (st->send_wake_ns != 0 && now >= st->send_wake_ns) {
        st->send_wake_ns = 0;
        Session* s = st->session;
        if (st->deferred && s && s->state == SState::kReady) {
          if (opts_.fair_share) {
            sched_.Ready(st->id, st->flow, st->qos.priority, st->qos.weight);
          } else {
            st->deferred = false;
            nghttp2_session_resume_data(s->h2, st->h2id);
            Touch(s);
          }
        }
      }
      if (st->receive_wake_ns != 0 && now >= st->receive_wake_ns) {
        st->receive_wake_ns = 0;
        FlushRx(st);  // may pause it again (then it is queued in throttled_ anew)
        if (!st->finished && st->session) Touch(st->session);
      }
    }
    // Still paused: the ones not due yet and the ones paused again above, each once.
    list.insert(list.end(), throttled_.begin(), throttled_.end());
    throttled_.clear();
    int64_t next = 0;
    std::unordered_set<uint64_t> seen;
    for (uint64_t id : list) {
      Stream* st = FindStream(id);
      if (st == nullptr || st->finished || !seen.insert(id).second) continue;
      int64_t w = 0;
      if (st->send_wake_ns != 0) w = st->send_wake_ns;
      if (st->receive_wake_ns != 0) w = w == 0 ? st->receive_wake_ns : std::min(w, st->receive_wake_ns);
      if (w == 0) continue;
      throttled_.push_back(id);
      next = next == 0 ? w : std::min(next, w);
    }
    return next;
  }

  // Fair share: grants ready streams bytes in priority order, then by deficit round robin between source
  // workloads, each grant served at once (nghttp2 pulls the stream's bytes through OnRead within its allowance),
  // until opts_.turn_bytes moved or nothing is ready.
  void ServeReady() {
    uint64_t budget = opts_.turn_bytes;
    qos::DrrScheduler::Grant g;
    int idle_grants = 0;
    while (budget > 0 && sched_.Next(&g)) {
      Stream* st = FindStream(g.item);
      if (st == nullptr) {
        Session* ss = FindSession(g.item);
        if (ss == nullptr || ss->state != SState::kReady) {
          sched_.Charge(g, 0, false);
          continue;
        }
        uint64_t used = 0;
        bool capped = false;
        ReadTls(ss, g.allowance, &used, &capped);
        ss = FindSession(g.item);
        if (ss) Touch(ss);
        sched_.Charge(g, used, capped && ss != nullptr && ss->state == SState::kReady);
        budget -= std::min(budget, used);
        if (used == 0 && ++idle_grants > 1024) break;
        continue;
      }
      Session* s = st->session;
      if (st == nullptr || st->finished || !st->attached || s == nullptr || s->state != SState::kReady) {
        sched_.Charge(g, 0, false);
        continue;
      }
      st->allowance = g.allowance;
      st->grant_moved = 0;
      st->grant_capped = false;
      if (st->deferred) {
        st->deferred = false;
        nghttp2_session_resume_data(s->h2, st->h2id);
      }
      Service(s);
      ProcessDeferred();
      st = FindStream(g.item);
      if (st == nullptr || st->finished) {
        sched_.Charge(g, 0, false);
        continue;
      }
      uint64_t moved = st->grant_moved;
      bool still = st->grant_capped && st->send_wake_ns == 0;
      st->allowance = 0;
      sched_.Charge(g, moved, still);
      budget -= std::min(budget, moved);
      // Streams whose bytes cannot move now (window, TLS buffer) leave the ready set; bound the turn anyway.
      if (moved == 0 && ++idle_grants > 1024) break;
    }
  }

  // --- nghttp2 callbacks (through the static trampolines) ---

  Stream* StreamOf(Session* s, int32_t h2id) {
    void* p = nghttp2_session_get_stream_user_data(s->h2, h2id);
    if (p == nullptr) return nullptr;
    Stream* st = FindStream(PtrId(p));
    return (st && !st->finished) ? st : nullptr;
  }

  int OnBeginHeaders(Session* s, const nghttp2_frame* frame) {
    if (!s->inbound || frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (s->state != SState::kReady) return 0;
    auto st = std::make_unique<Stream>();
    st->id = engine_->NextId();
    st->inbound = true;
    st->session = s;
    st->h2id = frame->hd.stream_id;
    st->counters = std::make_shared<StreamCounters>();
    st->counters->worker = index_;
    st->counters->inbound = true;
    nghttp2_session_set_stream_user_data(s->h2, st->h2id, IdPtr(st->id));
    s->streams.insert(st->id);
    owner_->streams_in++;
    streams_[st->id] = std::move(st);
    return 0;
  }

  int OnHeader(Session* s, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* st = StreamOf(s, frame->hd.stream_id);
    if (st == nullptr) return 0;
    std::string n(reinterpret_cast<const char*>(name), namelen);
    if (st->inbound) {
      if (st->reported) return 0;  // trailers
      st->header_bytes += namelen + valuelen + 32;
      if (st->header_bytes > kMaxRequestHeaderBytes || st->headers.size() / 2 >= kMaxRequestHeaders) {
        st->header_overflow = true;
        return 0;
      }
      if (n == ":method")
        st->method.assign(reinterpret_cast<const char*>(value), valuelen);
      else if (n == ":authority")
        st->authority.assign(reinterpret_cast<const char*>(value), valuelen);
      else if (!n.empty() && n[0] != ':') {
        st->headers.push_back(std::move(n));
        st->headers.emplace_back(reinterpret_cast<const char*>(value), valuelen);
      }
    } else if (n == ":status" && !st->reported) {
      int v = 0;
      for (size_t i = 0; i < valuelen && i < 3; i++) v = v * 10 + (value[i] - '0');
      st->status = v;
    }
    return 0;
  }

  int OnFrameRecv(Session* s, const nghttp2_frame* frame) {
    s->got_frame = true;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* st = StreamOf(s, frame->hd.stream_id);
        if (st == nullptr) return 0;
        if (st->inbound && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
          OnRequest(s, st);
        else if (!st->inbound && !st->reported)
          OnResponse(s, st);
        st = StreamOf(s, frame->hd.stream_id);
        if (st && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) OnRemoteEnd(st);
        return 0;
      }
      case NGHTTP2_DATA: {
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
          Stream* st = StreamOf(s, frame->hd.stream_id);
          if (st) OnRemoteEnd(st);
        }
        return 0;
      }
      case NGHTTP2_RST_STREAM: {
        Stream* st = StreamOf(s, frame->hd.stream_id);
        if (st == nullptr) return 0;
        st->rst_received = true;
        if (st->inbound && !st->responded) {
          int64_t now = NowMs();
          if (now - s->early_window_start >= kEarlyResetWindowMs) {
            s->early_window_start = now;
            s->early_resets = 0;
          }
          if (++s->early_resets > opts_.max_early_resets && !s->close_pending) {
            s->close_pending = true;
            s->close_reason = "rapid_reset";
            s->close_detail = "more than " + std::to_string(opts_.max_early_resets) + " streams reset before their response in 10 s";
            s->close_goaway = NGHTTP2_ENHANCE_YOUR_CALM;
          }
        }
        return 0;
      }
      case NGHTTP2_SETTINGS:
        if (!s->inbound && !(frame->hd.flags & NGHTTP2_FLAG_ACK))
          s->peer_max_streams = nghttp2_session_get_remote_settings(s->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
        return 0;
      case NGHTTP2_GOAWAY:
        s->goaway_received = true;
        if (!s->inbound) {
          s->retired = true;
          s->retire_reason = "peer_closed";
          RemoveFromPool(s);
        }
        return 0;
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) s->ping_outstanding = false;
        return 0;
      default: return 0;
    }
  }

  void OnRequest(Session* s, Stream* st) {
    if (st->header_overflow) {
      SubmitFinalStatus(s, st, 431);
      return;
    }
    if (st->method != "CONNECT" || !ValidAuthority(st->authority)) {
      SubmitFinalStatus(s, st, 400);
      return;
    }
    st->reported = true;
    st->deadline_ms = NowMs() + opts_.connect_timeout_ms;
    engine_->Register(st->id, st->counters);
    Event ev;
    ev.type = EventType::kStream;
    ev.id = st->id;
    ev.session = s->id;
    if (!s->peer_id.empty()) {
      ev.peer_id = s->peer_id;
      ev.has_peer_id = true;
    }
    ev.authority = st->authority;
    ev.headers = std::move(st->headers);
    st->headers.clear();
    ev.local_address = s->local_address;
    ev.local_port = s->local_port;
    ev.remote_address = s->remote_address;
    ev.remote_port = s->remote_port;
    engine_->Emit(std::move(ev));
  }

  void OnResponse(Session* s, Stream* st) {
    if (st->status >= 100 && st->status < 200) {
      st->status = 0;  // informational; the final answer follows
      return;
    }
    if (st->status == 200) {
      st->reported = true;
      st->deadline_ms = 0;
      Event ev;
      ev.type = EventType::kOpen;
      ev.id = st->id;
      ev.ok = true;
      if (!s->peer_id.empty()) {
        ev.peer_id = s->peer_id;
        ev.has_peer_id = true;
      }
      engine_->Emit(std::move(ev));
      return;
    }
    FailOpen(st, "status", "HBONE CONNECT " + st->req.authority + " via " + s->remote + " was answered with status " + std::to_string(st->status), nullptr,
             st->status);
  }

  void OnRemoteEnd(Stream* st) {
    st->rx_end = true;
    MaybeShutWrite(st);
  }

  int OnDataChunk(Session* s, int32_t h2id, const uint8_t* data, size_t len) {
    Stream* st = StreamOf(s, h2id);
    if (st == nullptr || (st->responded && !st->attached)) {
      nghttp2_session_consume(s->h2, h2id, len);
      return 0;
    }
    size_t written = 0;
    size_t direct = len;
    int64_t now = 0;
    if (st->qos.receive_limit && st->attached) {
      now = NowNs();
      uint64_t avail = st->receive_wake_ns != 0 ? 0 : st->qos.receive_limit->Available(now);
      if (avail < MinGrant(*st->qos.receive_limit, direct))
        direct = 0;  // wait for a whole chunk (MinGrant)
      else if (avail < direct)
        direct = static_cast<size_t>(avail);
    }
    if (st->attached && st->fd >= 0 && st->rx.empty() && direct > 0) {
      for (;;) {
        ssize_t n = send(st->fd, data, direct, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
          written = static_cast<size_t>(n);
          break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
          deferred_failures_.emplace_back(st->id, errno);
          nghttp2_session_consume(s->h2, h2id, len);
          return 0;
        }
        break;
      }
    }
    if (written > 0) {
      st->counters->received.fetch_add(written, std::memory_order_relaxed);
      if (st->qos.stats) st->qos.stats->received.fetch_add(written, std::memory_order_relaxed);
      if (st->qos.receive_limit) ChargeReceive(st, written, now);
      nghttp2_session_consume(s->h2, h2id, written);
    }
    if (written < len) {
      st->rx.Append(data + written, len - written);
      st->unconsumed += len - written;
      owner_->buffered += static_cast<int64_t>(len - written);
      if (st->qos.receive_limit && st->attached && written == direct && direct < len && st->receive_wake_ns == 0) PauseReceive(st, now, st->rx.size());
    }
    return 0;
  }

  int OnStreamClose(Session* s, int32_t h2id, uint32_t error_code) {
    Stream* st = StreamOf(s, h2id);
    if (st == nullptr) return 0;
    st->h2_closed = true;
    st->h2_error = error_code;
    if (!st->reported) {
      if (!st->inbound) {
        FailOpen(st, st->rst_received ? "protocol" : "closed",
                 "HBONE CONNECT " + st->req.authority + " via " + s->remote + " was closed before a response (code " + std::to_string(error_code) + ")");
      } else {
        DropStream(st);
      }
      return 0;
    }
    if (!st->attached) {
      if (st->responded)
        DropStream(st);  // answered with a refusal; JS is done with it
      else
        FinishStream(st, st->rst_received ? Outcome::kReset : Outcome::kError, "tunnel", error_code, 0, false, 0);
      return 0;
    }
    if (st->rst_received || error_code != 0) {
      FinishStream(st, Outcome::kReset, "tunnel", error_code, 0, false, 0);
      return 0;
    }
    CheckDone(st);
    return 0;
  }

  int OnFrameSend(Session* s, const nghttp2_frame* frame) {
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      Stream* st = StreamOf(s, frame->hd.stream_id);
      if (st) st->es_sent = true;
    } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != 0) {
      s->goaway_sent_code = frame->goaway.error_code;
    }
    return 0;
  }

  int OnInvalidFrame(Session* s) {
    if (++s->invalid_frames > kMaxInvalidFrames && !s->close_pending) {
      s->close_pending = true;
      s->close_reason = "protocol_error";
      s->close_detail = "more than " + std::to_string(kMaxInvalidFrames) + " invalid frames";
      s->close_goaway = NGHTTP2_ENHANCE_YOUR_CALM;
    }
    return 0;
  }

  ssize_t OnRead(Session* s, uint64_t id, uint8_t* buf, size_t length, uint32_t* flags) {
    (void)s;
    Stream* st = FindStream(id);
    if (st == nullptr || st->finished) return NGHTTP2_ERR_DEFERRED;
    if (!st->attached || st->fd < 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    bool have_pending = st->pending_off < st->pending.size();
    if (!have_pending && st->fd_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return 0;
    }
    // Fair share: read only inside a grant of the scheduler (ServeReady); otherwise wait for one.
    if (st->allowance == 0) {
      st->deferred = true;
      if (st->send_wake_ns == 0) sched_.Ready(st->id, st->flow, st->qos.priority, st->qos.weight);
      return NGHTTP2_ERR_DEFERRED;
    }
    size_t want = length;
    if (st->allowance != kNoAllowance && st->allowance < want) want = static_cast<size_t>(st->allowance);
    int64_t now = 0;
    if (st->qos.send_limit) {
      now = NowNs();
      uint64_t avail = st->qos.send_limit->Available(now);
      if (avail < MinGrant(*st->qos.send_limit, want)) {
        // Over bytes/s: stop reading this socket until the bucket refills (the timer in Run resumes it).
        st->deferred = true;
        st->grant_capped = false;
        st->send_wake_ns = now + std::max<int64_t>(st->qos.send_limit->WaitNs(MinGrant(*st->qos.send_limit, want), now), 1000000);
        st->send_waited = true;
        st->qos.send_limit->NoteThrottle(0, MinGrant(*st->qos.send_limit, want), now);
        throttled_.push_back(st->id);
        return NGHTTP2_ERR_DEFERRED;
      }
      if (avail < want) want = static_cast<size_t>(avail);
    }
    st->grant_capped = false;
    // Bytes moved socket → tunnel: counted, charged to the bucket and to the scheduler's grant.
    auto moved = [&](size_t n) {
      st->counters->sent.fetch_add(n, std::memory_order_relaxed);
      if (st->qos.stats) st->qos.stats->sent.fetch_add(n, std::memory_order_relaxed);
      if (st->qos.send_limit) {
        st->qos.send_limit->Consume(n, now);
        if (st->send_waited) st->qos.send_limit->NoteDelayed(n);
      }
      if (st->allowance != kNoAllowance) {
        st->allowance -= std::min<uint64_t>(st->allowance, n);
        st->grant_moved += n;
      }
    };
    if (have_pending) {  // what the agent read before the handoff goes first, under the same limits
      size_t n = std::min(want, st->pending.size() - st->pending_off);
      std::memcpy(buf, st->pending.data() + st->pending_off, n);
      st->pending_off += n;
      owner_->buffered -= static_cast<int64_t>(n);
      if (st->pending_off == st->pending.size()) {
        std::string().swap(st->pending);
        st->pending_off = 0;
      }
      moved(n);
      st->grant_capped = st->allowance != kNoAllowance;  // the socket may hold more behind it
      return static_cast<ssize_t>(n);
    }
    for (;;) {
      ssize_t n = read(st->fd, buf, want);
      if (n > 0) {
        moved(static_cast<size_t>(n));
        // The grant is spent (or the bucket cut the read short) while the socket may hold more: still ready.
        if (st->allowance != kNoAllowance) st->grant_capped = static_cast<size_t>(n) == want;
        return n;
      }
      if (n == 0) {
        st->fd_eof = true;
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      if (errno == EINTR) continue;
      st->deferred = true;
      if (errno != EAGAIN && errno != EWOULDBLOCK) deferred_failures_.emplace_back(st->id, errno);
      return NGHTTP2_ERR_DEFERRED;
    }
  }

  static ssize_t ReadCallback(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* source, void* user_data) {
    auto* s = static_cast<Session*>(user_data);
    return static_cast<WorkerImpl*>(s->worker)->OnRead(s, PtrId(source->ptr), buf, length, flags);
  }

 public:
  // Trampolines used by Callbacks().
  static int CbBeginHeaders(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnBeginHeaders(s, f);
  }
  static int CbHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnHeader(s, f, n, nl, v, vl);
  }
  static int CbFrameRecv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnFrameRecv(s, f);
  }
  static int CbDataChunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t l, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnDataChunk(s, id, d, l);
  }
  static int CbStreamClose(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnStreamClose(s, id, code);
  }
  static int CbFrameSend(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnFrameSend(s, f);
  }
  static int CbInvalidFrame(nghttp2_session*, const nghttp2_frame*, int, void* u) {
    auto* s = static_cast<Session*>(u);
    return static_cast<WorkerImpl*>(s->worker)->OnInvalidFrame(s);
  }

 private:
  Session* FindSession(uint64_t id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() ? nullptr : it->second.get();
  }
  Stream* FindStream(uint64_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }
  bool AddToEpoll(int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = tag;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  Worker* owner_;
  Engine* engine_;
  Options opts_;
  int index_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::function<void(WorkerImpl&)>> commands_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<uint64_t, std::unique_ptr<Stream>> streams_;
  std::unordered_map<std::string, std::vector<Session*>> pool_;
  std::unordered_set<uint64_t> touched_;
  std::vector<std::pair<uint64_t, int>> deferred_failures_;
  std::vector<std::unique_ptr<Session>> graveyard_sessions_;
  std::vector<std::unique_ptr<Stream>> graveyard_streams_;
  std::vector<char> rbuf_;
  qos::DrrScheduler sched_;
  std::unordered_map<std::string, uint32_t> flow_ids_;
  std::vector<uint64_t> throttled_;
};

namespace {

nghttp2_session_callbacks* Callbacks() {
  static nghttp2_session_callbacks* cbs = [] {
    nghttp2_session_callbacks* c = nullptr;
    nghttp2_session_callbacks_new(&c);
    nghttp2_session_callbacks_set_on_begin_headers_callback(c, WorkerImpl::CbBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(c, WorkerImpl::CbHeader);
    nghttp2_session_callbacks_set_on_frame_recv_callback(c, WorkerImpl::CbFrameRecv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(c, WorkerImpl::CbDataChunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(c, WorkerImpl::CbStreamClose);
    nghttp2_session_callbacks_set_on_frame_send_callback(c, WorkerImpl::CbFrameSend);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(c, WorkerImpl::CbInvalidFrame);
    return c;
  }();
  return cbs;
}

}  // namespace

// --- Worker: the thread-safe front ---

Worker::Worker(Engine* engine, int index) : impl_(std::make_unique<WorkerImpl>(this, engine, index)) {}
Worker::~Worker() = default;
void Worker::Start() { impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Post(std::function<void(WorkerImpl&)> fn) { impl_->Post(std::move(fn)); }

void Worker::Open(OpenCommand cmd) {
  Post([c = std::move(cmd)](WorkerImpl& w) mutable { w.DoOpen(std::move(c)); });
}
void Worker::Serve(ServeCommand cmd) {
  Post([c = std::move(cmd)](WorkerImpl& w) mutable { w.DoServe(std::move(c)); });
}
void Worker::Respond(uint64_t stream, int status) {
  Post([stream, status](WorkerImpl& w) { w.DoRespond(stream, status); });
}
void Worker::Attach(uint64_t stream, int fd, std::string pending, StreamQos qos) {
  Post([stream, fd, p = std::move(pending), q = std::move(qos)](WorkerImpl& w) mutable { w.DoAttach(stream, fd, std::move(p), std::move(q)); });
}
void Worker::Abort(uint64_t stream) {
  Post([stream](WorkerImpl& w) { w.DoAbort(stream); });
}
void Worker::CloseAll() {
  Post([](WorkerImpl& w) { w.DoCloseAll(); });
}
void Worker::Drain() {
  Post([](WorkerImpl& w) { w.DoDrain(); });
}
void Worker::RetireSource(const std::string& source_id) {
  Post([id = source_id](WorkerImpl& w) { w.DoRetireSource(id); });
}

}  // namespace smesh::hbone
