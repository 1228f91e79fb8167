// HTTP/1.1 engine worker: one thread with an edge-triggered epoll owning client sessions (one per accepted socket) and
// per-target pools of upstream HTTP/1.1 connections. Each session parses request heads (http1_parser.h), posts them to
// JavaScript, and executes the decisions strictly in request order: only the front request of a session moves bytes,
// so responses leave in order and a request's body is always the next thing in the client's input.
//
// Every socket event marks a session and runs Pump(), which moves bytes as far as the bounded buffers allow (client
// input, upstream output, upstream input, client output: each at most Options::max_buffer before reading stops).
// Sessions and upstream connections are never freed while a pump runs: they are retired to a graveyard emptied at the
// end of each loop turn.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "errors.h"
#include "http1_engine.h"
#include "http1_parser.h"

namespace smesh::http1 {

int64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

namespace {

constexpr uint64_t kTagWake = 0;
constexpr uint64_t kTagSession = 1;
constexpr uint64_t kTagUpstream = 2;
constexpr size_t kReadBuffer = 64 * 1024;
constexpr int64_t kTickMs = 50;
constexpr int64_t kLingerMs = 2000;

uint64_t Tag(uint64_t id, uint64_t kind) { return (id << 2) | kind; }

void CloseFd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

std::string FormatHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
  }
}

// Fields that describe one hop (RFC 9110 §7.6.1) plus the framing fields the engine writes itself.
bool IsHopByHop(const std::string& n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "te" || n == "transfer-encoding" || n == "upgrade" ||
         n == "content-length" || n == "trailer" || n == "proxy-authenticate" || n == "proxy-authorization";
}

bool Listed(const std::vector<std::string>& list, const std::string& n) { return std::find(list.begin(), list.end(), n) != list.end(); }

// Bytes waiting for a socket or a parser; the gap before `head_` is reclaimed once it is half the buffer.
class Buf {
 public:
  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }
  const char* data() const { return data_.data() + head_; }
  std::string_view view() const { return std::string_view(data(), size()); }
  void Append(const char* p, size_t n) {
    if (head_ > 0 && head_ >= data_.size() / 2) {
      data_.erase(0, head_);
      head_ = 0;
    }
    data_.append(p, n);
  }
  void Append(std::string_view s) { Append(s.data(), s.size()); }
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

enum class UpState { kConnecting, kIdle, kBusy };

struct Upstream {
  uint64_t id = 0;
  int fd = -1;
  std::string key;
  UpState state = UpState::kConnecting;
  Buf in, out;
  uint32_t requests = 0;
  int64_t connect_deadline_us = 0;
  int64_t idle_since_us = 0;
  uint64_t session = 0;  // owner while connecting or busy
  bool rd_ready = false, wr_ready = false;
  bool eof = false;
  int err = 0;
  bool dead = false;
};

enum class Phase { kWaiting, kConnecting, kForwarding, kAwaitReply, kLocal };
enum class OutFraming { kNone, kRaw, kChunkEncode, kDechunk };

struct Exchange {
  uint64_t id = 0;
  Head head;
  std::string raw_head;  // upgrade/CONNECT requests only: handed over on takeover
  bool decided = false;
  Decision d;
  bool replied = false;
  Decision reply;
  Phase phase = Phase::kWaiting;
  int64_t start_us = 0;
  int64_t deadline_us = 0;   // decision or reply deadline; response deadline while forwarding
  bool local_error = false;  // a malformed request answered by the engine (no event went to JavaScript)
  std::string error_detail;
  // request body from the client
  bool req_done = false;
  uint64_t req_remaining = 0;
  ChunkDecoder req_chunks;
  uint64_t req_bytes = 0;
  uint64_t skipped = 0;
  bool sent_continue = false;
  // upstream
  Upstream* up = nullptr;
  std::string target;
  std::string pool_key;  // target, plus "@source" when the decision names a source address
  bool reused = false;
  int attempts = 0;
  bool fresh_only = false;
  // response
  HeadParser resp_parser{HeadLimits{}};
  Head resp;
  bool resp_head_done = false;
  bool resp_started = false;  // bytes of the final response queued for the client
  bool resp_done = false;
  uint64_t resp_remaining = 0;
  ChunkDecoder resp_chunks;
  OutFraming framing = OutFraming::kNone;
  uint64_t resp_bytes = 0;
  int status = 0;
  std::string outcome;
  std::string failure, detail;
  bool close_after = false;
};

struct Session {
  uint64_t id = 0;
  int fd = -1;
  Buf in, out;
  std::deque<std::unique_ptr<Exchange>> q;
  HeadParser parser;
  bool parse_blocked = false;
  bool read_eof = false;
  bool closing = false;    // no more requests: close once the output is written
  bool lingering = false;  // output written and write side shut: input drained until EOF or the deadline
  int64_t linger_deadline_us = 0;
  bool dead = false;
  bool rd_ready = false, wr_ready = false;
  int64_t head_start_us = 0;
  int64_t idle_since_us = 0;
  uint64_t requests = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // on the client socket, heads and framing included
  std::string close_reason = "eof";
  std::string close_detail;
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
  explicit Session(const HeadLimits& l) : parser(l) {}
};

}  // namespace

class WorkerImpl {
 public:
  WorkerImpl(Worker* owner, Engine* engine, int index) : owner_(owner), engine_(engine), opts_(engine->options()), index_(index) {
    limits_.max_head_bytes = opts_.max_head_bytes;
    limits_.max_headers = opts_.max_headers;
    limits_.max_start_line = opts_.max_request_line;
  }

  ~WorkerImpl() {
    CloseFd(epfd_);
    CloseFd(wakefd_);
  }

  void Start() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) ThrowErrno("http1 worker: epoll_create1", errno);
    wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) ThrowErrno("http1 worker: eventfd", errno);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTagWake;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) ThrowErrno("http1 worker: epoll_ctl(eventfd)", errno);
    rbuf_.resize(kReadBuffer);
    thread_ = std::thread([this] { Run(); });
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
    // Nothing reads events anymore: release every fd without reporting.
    for (auto& [id, s] : sessions_) CloseFd(s->fd);
    for (auto& [id, u] : upstreams_) CloseFd(u->fd);
    sessions_.clear();
    upstreams_.clear();
    graveyard_sessions_.clear();
    graveyard_upstreams_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    commands_.clear();
  }

  // --- commands (worker thread) ---

  void DoServe(ServeCommand cmd) {
    HeadLimits limits = limits_;
    if (cmd.max_head_bytes > 0) limits.max_head_bytes = cmd.max_head_bytes;
    auto sp = std::make_unique<Session>(limits);
    Session* s = sp.get();
    s->id = cmd.session;
    s->fd = cmd.fd;
    s->local_address = std::move(cmd.local_address);
    s->remote_address = std::move(cmd.remote_address);
    s->local_port = cmd.local_port;
    s->remote_port = cmd.remote_port;
    s->idle_since_us = NowUs();
    sessions_[s->id] = std::move(sp);
    owner_->sessions++;
    if (!AddToEpoll(s->fd, Tag(s->id, kTagSession))) {
      s->close_detail = std::string("epoll_ctl: ") + std::strerror(errno);
      CloseSession(s, "io_error");
      return;
    }
    s->rd_ready = s->wr_ready = true;
    Pump(s);
  }

  void DoDecide(uint64_t id, Decision d) {
    Exchange* ex = nullptr;
    Session* s = FindExchange(id, &ex);
    if (s == nullptr || ex->decided) return;
    ex->decided = true;
    ex->d = std::move(d);
    Pump(s);
  }

  void DoReply(uint64_t id, Decision d) {
    Exchange* ex = nullptr;
    Session* s = FindExchange(id, &ex);
    if (s == nullptr || ex->phase != Phase::kAwaitReply || ex->replied) return;
    ex->replied = true;
    ex->reply = std::move(d);
    Pump(s);
  }

  // A caller's close (e.g. a policy change closed the tunnel): reset, not a graceful end.
  void DoCloseSession(uint64_t id) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second->dead) return;
    Session* s = it->second.get();
    linger lg{1, 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    CloseSession(s, "closed");
  }

  void DoCloseAll() {
    std::vector<Session*> all;
    for (auto& [id, s] : sessions_)
      if (!s->dead) all.push_back(s.get());
    for (Session* s : all) CloseSession(s, "closed");
    std::vector<Upstream*> ups;
    for (auto& [id, u] : upstreams_)
      if (!u->dead) ups.push_back(u.get());
    for (Upstream* u : ups) KillUpstream(u);
  }

 private:
  // --- loop ---

  void Run() {
    constexpr int kMaxEvents = 128;
    epoll_event events[kMaxEvents];
    int64_t next_tick = NowUs() + kTickMs * 1000;
    while (!stop_.load()) {
      int timeout = -1;
      if (!sessions_.empty() || !upstreams_.empty()) timeout = static_cast<int>(std::max<int64_t>(0, (next_tick - NowUs()) / 1000));
      int n = epoll_wait(epfd_, events, kMaxEvents, timeout);
      if (n < 0 && errno != EINTR) break;
      for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        uint64_t kind = tag & 3;
        uint64_t id = tag >> 2;
        uint32_t e = events[i].events;
        if (kind == kTagWake) {
          uint64_t v;
          ssize_t got = read(wakefd_, &v, sizeof(v));
          (void)got;
          TakeCommands();
        } else if (kind == kTagSession) {
          Session* s = FindSession(id);
          if (s == nullptr) continue;
          if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->rd_ready = true;
          if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) s->wr_ready = true;
          Pump(s);
        } else if (kind == kTagUpstream) {
          Upstream* u = FindUpstream(id);
          if (u != nullptr) OnUpstreamIo(u, e);
        }
      }
      int64_t now = NowUs();
      if (now >= next_tick) {
        Tick(now);
        next_tick = now + kTickMs * 1000;
      }
      graveyard_sessions_.clear();
      graveyard_upstreams_.clear();
      owner_->buffered.store(BufferedBytes());
    }
  }

  void TakeCommands() {
    std::vector<std::function<void(WorkerImpl&)>> cmds;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cmds.swap(commands_);
    }
    for (auto& fn : cmds) fn(*this);
  }

  int64_t BufferedBytes() {
    int64_t total = 0;
    for (auto& [id, s] : sessions_) total += static_cast<int64_t>(s->in.size() + s->out.size());
    for (auto& [id, u] : upstreams_) total += static_cast<int64_t>(u->in.size() + u->out.size());
    return total;
  }

  bool AddToEpoll(int fd, uint64_t tag) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = tag;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
  }

  Session* FindSession(uint64_t id) {
    auto it = sessions_.find(id);
    return it == sessions_.end() || it->second->dead ? nullptr : it->second.get();
  }
  Upstream* FindUpstream(uint64_t id) {
    auto it = upstreams_.find(id);
    return it == upstreams_.end() || it->second->dead ? nullptr : it->second.get();
  }
  Session* FindExchange(uint64_t id, Exchange** ex) {
    auto it = exchange_session_.find(id);
    if (it == exchange_session_.end()) return nullptr;
    Session* s = FindSession(it->second);
    if (s == nullptr) return nullptr;
    for (auto& e : s->q)
      if (e->id == id) {
        *ex = e.get();
        return s;
      }
    return nullptr;
  }

  void Tick(int64_t now) {
    // A snapshot: closing a session moves it to the graveyard (memory kept until the end of the loop turn).
    std::vector<Session*> all, touched, expired, idle;
    all.reserve(sessions_.size());
    for (auto& [id, sp] : sessions_) all.push_back(sp.get());
    for (Session* s : all) {
      if (s->dead) continue;
      if (s->lingering) {
        if (now > s->linger_deadline_us) expired.push_back(s);
        continue;
      }
      bool touch = false;
      if (!s->q.empty()) {
        Exchange* ex = s->q.front().get();
        if (ex->phase == Phase::kWaiting && !ex->decided && !ex->local_error && now > ex->deadline_us) {
          ex->decided = true;
          ex->d = Decision();
          ex->d.status = 503;
          ex->d.body = "no routing decision for the request in time\n";
          touch = true;
        } else if (ex->phase == Phase::kAwaitReply && !ex->replied && now > ex->deadline_us) {
          ex->replied = true;
          ex->reply = Decision();
          ex->reply.status = ex->failure == "timeout" ? 504 : 503;
          ex->reply.body = "upstream " + ex->failure + "\n";
          touch = true;
        } else if (ex->phase == Phase::kConnecting && ex->up && ex->up->state == UpState::kConnecting && now > ex->up->connect_deadline_us) {
          UpstreamFailed(s, ex, "connect_failed", "connect to " + ex->target + " timed out");
          touch = true;
        } else if (ex->phase == Phase::kForwarding && !ex->resp_head_done && ex->req_done && ex->deadline_us > 0 && now > ex->deadline_us) {
          UpstreamFailed(s, ex, "timeout", "no response from " + ex->target + " in time");
          touch = true;
        }
      }
      if (s->head_start_us > 0 && now - s->head_start_us > opts_.header_timeout_ms * 1000 && !s->parse_blocked) {
        AddLocalError(s, 408, "request head not complete in time", "header_timeout");
        touch = true;
      }
      if (s->q.empty() && s->in.empty() && s->out.empty() && now - s->idle_since_us > opts_.client_idle_timeout_ms * 1000) {
        idle.push_back(s);
        continue;
      }
      if (touch) touched.push_back(s);
    }
    for (Session* s : expired) CloseSession(s, s->close_reason);
    for (Session* s : idle) CloseSession(s, "idle");
    for (Session* s : touched)
      if (!s->dead) Pump(s);
    std::vector<Upstream*> stale;
    for (auto& [id, u] : upstreams_)
      if (!u->dead && u->state == UpState::kIdle && now - u->idle_since_us > opts_.upstream_idle_timeout_ms * 1000) stale.push_back(u.get());
    for (Upstream* u : stale) KillUpstream(u);
  }

  // --- client side ---

  // Moves bytes as far as the buffers allow; every step returns whether it changed anything.
  void Pump(Session* s) {
    if (s->lingering) {
      DrainLinger(s);
      return;
    }
    for (int guard = 0; guard < 10000 && !s->dead; guard++) {
      bool progress = false;
      progress |= ReadClient(s);
      if (s->dead) return;
      progress |= ParseHeads(s);
      progress |= Drive(s);
      if (s->dead) return;
      progress |= FlushClient(s);
      if (s->dead) return;
      if (!progress) break;
    }
    if (s->dead) return;
    if (s->read_eof && !s->q.empty()) {
      Exchange* ex = s->q.front().get();
      if (!ex->req_done && s->in.empty()) {
        s->close_detail = "client closed during the request body";
        CloseSession(s, "client_closed");
        return;
      }
    }
    bool idle = s->q.empty();
    if (idle && s->out.empty() && (s->closing || s->read_eof)) {
      if (s->read_eof) {
        CloseSession(s, s->closing ? s->close_reason : "eof");
        return;
      }
      // Closing while the client may still be sending: half-close and drain briefly, so unread input does not turn the
      // close into a reset that destroys the response on its way (lingering close, RFC 9112 §9.6).
      shutdown(s->fd, SHUT_WR);
      s->lingering = true;
      s->rd_ready = true;
      s->linger_deadline_us = NowUs() + kLingerMs * 1000;
      DrainLinger(s);
    }
  }

  void DrainLinger(Session* s) {
    while (s->rd_ready) {
      ssize_t n = read(s->fd, rbuf_.data(), rbuf_.size());
      if (n > 0) {
        s->bytes_in += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        s->rd_ready = false;
        return;
      }
      CloseSession(s, s->close_reason);
      return;
    }
  }

  bool ReadClient(Session* s) {
    bool moved = false;
    while (s->rd_ready && !s->read_eof && !s->closing && s->in.size() < opts_.max_buffer) {
      size_t room = std::min(rbuf_.size(), opts_.max_buffer - s->in.size());
      ssize_t n = read(s->fd, rbuf_.data(), room);
      if (n > 0) {
        s->bytes_in += static_cast<uint64_t>(n);
        s->in.Append(rbuf_.data(), static_cast<size_t>(n));
        moved = true;
        continue;
      }
      if (n == 0) {
        s->read_eof = true;
        return true;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->rd_ready = false;
        break;
      }
      s->close_detail = std::string("read: ") + std::strerror(errno);
      CloseSession(s, "reset");
      return true;
    }
    return moved;
  }

  bool FlushClient(Session* s) {
    bool moved = false;
    while (s->wr_ready && !s->out.empty()) {
      ssize_t n = send(s->fd, s->out.data(), s->out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        s->bytes_out += static_cast<uint64_t>(n);
        s->out.Consume(static_cast<size_t>(n));
        moved = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        s->wr_ready = false;
        break;
      }
      s->close_detail = std::string("write: ") + std::strerror(errno);
      CloseSession(s, "reset");
      return true;
    }
    if (moved && s->out.empty()) s->out.Release();
    return moved;
  }

  void AddLocalError(Session* s, int status, const std::string& detail, const char* reason) {
    auto ex = std::make_unique<Exchange>();
    ex->local_error = true;
    ex->decided = true;
    ex->d.status = status;
    ex->d.body = detail + "\n";
    ex->error_detail = detail;
    ex->req_done = true;
    ex->close_after = true;
    ex->start_us = NowUs();
    ex->head.method = "GET";
    s->q.push_back(std::move(ex));
    s->parse_blocked = true;
    s->head_start_us = 0;
    s->close_reason = reason;
    s->close_detail = detail;
    owner_->bad_requests++;
  }

  bool ParseHeads(Session* s) {
    bool moved = false;
    while (!s->parse_blocked && !s->closing && s->q.size() < opts_.max_pipelined && !s->in.empty()) {
      if (!s->q.empty() && !s->q.back()->req_done) break;  // that request's body comes first
      if (s->head_start_us == 0) s->head_start_us = NowUs();
      auto ex = std::make_unique<Exchange>();
      size_t consumed = 0;
      int status = 0;
      std::string detail;
      ParseResult r = s->parser.ParseRequest(s->in.view(), &ex->head, &consumed, &status, &detail);
      if (r == ParseResult::kIncomplete) {
        if (s->read_eof) {
          s->in.Consume(s->in.size());
          s->head_start_us = 0;
        }
        break;
      }
      s->parser.Reset();
      if (r == ParseResult::kError) {
        AddLocalError(s, status, detail, status == 431 ? "header_too_large" : "bad_request");
        s->in.Consume(s->in.size());
        return true;
      }
      s->head_start_us = 0;
      Head& h = ex->head;
      if (h.upgrade) ex->raw_head.assign(s->in.data(), consumed);
      s->in.Consume(consumed);
      ex->id = engine_->NextId();
      ex->start_us = NowUs();
      ex->deadline_us = ex->start_us + opts_.decision_timeout_ms * 1000;
      ex->req_done = h.body == BodyKind::kNone;
      ex->req_remaining = h.content_length;
      if (!h.keep_alive || h.minor == 0) {
        ex->close_after = true;
        s->parse_blocked = true;
      }
      if (h.upgrade) s->parse_blocked = true;
      engine_->Route(ex->id, index_);
      exchange_session_[ex->id] = s->id;
      owner_->requests_in_flight++;
      owner_->requests_total++;
      s->requests++;
      EmitRequest(s, *ex);
      s->q.push_back(std::move(ex));
      moved = true;
    }
    return moved;
  }

  void EmitRequest(Session* s, const Exchange& ex) {
    Event ev;
    ev.type = EventType::kRequest;
    ev.id = ex.id;
    ev.session = s->id;
    const Head& h = ex.head;
    ev.method = h.method;
    ev.target = h.target;
    ev.authority = h.authority;
    ev.minor = h.minor;
    ev.headers.reserve(h.headers.size() * 2);
    for (auto& [n, v] : h.headers) {
      ev.headers.push_back(n);
      ev.headers.push_back(v);
    }
    ev.body_kind = h.body == BodyKind::kChunked ? "chunked" : h.body == BodyKind::kLength ? "length" : "none";
    ev.content_length = h.content_length;
    ev.upgrade = h.upgrade;
    ev.expect_continue = h.expect_continue;
    ev.keep_alive = h.keep_alive;
    ev.local_address = s->local_address;
    ev.remote_address = s->remote_address;
    ev.local_port = s->local_port;
    ev.remote_port = s->remote_port;
    engine_->Emit(std::move(ev));
  }

  // The front request: decision → upstream/local reply → body and response → finish.
  bool Drive(Session* s) {
    if (s->q.empty()) return false;
    Exchange* ex = s->q.front().get();
    switch (ex->phase) {
      case Phase::kWaiting: {
        if (!ex->decided) return false;
        if (ex->local_error) {
          StartLocal(s, ex, ex->d, "rejected");
          return true;
        }
        switch (ex->d.kind) {
          case Decision::Kind::kDeny: StartLocal(s, ex, ex->d, "denied"); return true;
          case Decision::Kind::kTakeover:
            if (!ex->head.upgrade) {
              Decision bad;
              bad.status = 502;
              bad.body = "takeover is for Upgrade and CONNECT requests only\n";
              StartLocal(s, ex, bad, "denied");
              return true;
            }
            if (!s->out.empty()) return false;  // earlier responses first
            Takeover(s, ex);
            return true;
          case Decision::Kind::kForward:
            if (ex->head.method == "CONNECT") {
              Decision bad;
              bad.status = 502;
              bad.body = "CONNECT requests are taken over, not forwarded\n";
              StartLocal(s, ex, bad, "denied");
              return true;
            }
            if (ex->head.upgrade && !ex->close_after) s->parse_blocked = false;  // forwarded without its Upgrade
            ex->target = ex->d.pair.empty() ? FormatHostPort(ex->d.host, ex->d.port) : "pair:" + ex->d.pair;
            ex->pool_key = ex->d.source.empty() ? ex->target : ex->target + "@" + ex->d.source;
            ex->phase = Phase::kConnecting;
            Acquire(s, ex);
            return true;
        }
        return false;
      }
      case Phase::kConnecting:
        if (ex->up == nullptr || ex->up->state != UpState::kBusy) return false;
        StartForwarding(s, ex);
        return true;
      case Phase::kForwarding: return Forward(s, ex);
      case Phase::kAwaitReply:
        if (!ex->replied) return false;
        StartLocal(s, ex, ex->reply, "replied");
        return true;
      case Phase::kLocal: return SkipBody(s, ex);
    }
    return false;
  }

  // Writes a local response (deny, reply, rejected request) and then drops the rest of the request body.
  void StartLocal(Session* s, Exchange* ex, const Decision& d, const char* outcome) {
    ex->outcome = outcome;
    ex->status = d.status;
    if (!ex->req_done) {
      bool unread_expect = ex->head.expect_continue && !ex->sent_continue && s->in.empty();
      bool too_long = ex->head.body == BodyKind::kLength && ex->req_remaining > opts_.max_skip_body;
      if (unread_expect || too_long) ex->close_after = true;
    }
    bool no_body = ex->head.method == "HEAD" || d.status == 204 || d.status == 304;
    std::string h = "HTTP/1.1 " + std::to_string(d.status) + " " + ReasonPhrase(d.status) + "\r\n";
    for (auto& [n, v] : d.headers) {
      if (IsHopByHop(n)) continue;
      h += n + ": " + v + "\r\n";
    }
    if (d.status != 204 && d.status != 304) h += "content-length: " + std::to_string(d.body.size()) + "\r\n";
    if (ex->close_after) h += "connection: close\r\n";
    h += "\r\n";
    s->out.Append(h);
    if (!no_body) s->out.Append(d.body);
    ex->resp_bytes = no_body ? 0 : d.body.size();
    ex->resp_started = true;
    ex->phase = Phase::kLocal;
    if (ex->close_after) {
      ex->req_done = true;  // nothing more is read from this connection
      s->closing = true;
    }
    SkipBody(s, ex);
  }

  bool SkipBody(Session* s, Exchange* ex) {
    bool moved = false;
    while (!ex->req_done && !s->in.empty()) {
      size_t before = s->in.size();
      if (!ConsumeBody(s, ex, nullptr)) return true;
      moved |= s->in.size() != before;
      if (ex->skipped > opts_.max_skip_body) {
        ex->close_after = true;
        ex->req_done = true;
        s->closing = true;
      }
    }
    if (ex->req_done) {
      Finish(s, ex);
      return true;
    }
    return moved;
  }

  // Consumes request body bytes from the client input; into `out` (raw framing kept) or dropped. False after a
  // malformed chunked body (the session is then closing with a 400 or already closed).
  bool ConsumeBody(Session* s, Exchange* ex, Buf* out) {
    size_t room = out ? (out->size() < opts_.max_buffer ? opts_.max_buffer - out->size() : 0) : s->in.size();
    size_t take = std::min(room, s->in.size());
    if (take == 0) return true;
    if (ex->head.body == BodyKind::kLength) {
      take = static_cast<size_t>(std::min<uint64_t>(take, ex->req_remaining));
      if (out) out->Append(s->in.data(), take);
      ex->req_remaining -= take;
      if (ex->req_remaining == 0) ex->req_done = true;
      if (out)
        ex->req_bytes += take;
      else
        ex->skipped += take;
      s->in.Consume(take);
      return true;
    }
    uint64_t before = ex->req_chunks.data_bytes();
    size_t used = ex->req_chunks.Feed(s->in.data(), take, nullptr, nullptr);
    if (ex->req_chunks.error()) {
      std::string detail = std::string("malformed chunked request body: ") + ex->req_chunks.error_detail();
      owner_->bad_requests++;
      s->close_reason = "bad_request";
      s->close_detail = detail;
      if (!ex->resp_started) {
        if (ex->up) {
          KillUpstream(ex->up);
          ex->up = nullptr;
        }
        ex->close_after = true;
        Decision bad;
        bad.status = 400;
        bad.body = detail + "\n";
        ex->req_done = true;
        StartLocal(s, ex, bad, "rejected");
      } else {
        CloseSession(s, "bad_request");
      }
      return false;
    }
    if (out) out->Append(s->in.data(), used);
    uint64_t data = ex->req_chunks.data_bytes() - before;
    if (out)
      ex->req_bytes += data;
    else
      ex->skipped += data;
    s->in.Consume(used);
    if (ex->req_chunks.done()) ex->req_done = true;
    return true;
  }

  void Takeover(Session* s, Exchange* ex) {
    epoll_ctl(epfd_, EPOLL_CTL_DEL, s->fd, nullptr);
    Event ev;
    ev.type = EventType::kTakeover;
    ev.id = ex->id;
    ev.session = s->id;
    ev.fd = s->fd;
    ev.pending = ex->raw_head;
    ev.pending.append(s->in.data(), s->in.size());
    s->fd = -1;  // now JavaScript's
    s->in.Consume(s->in.size());
    engine_->Unroute(ex->id);
    exchange_session_.erase(ex->id);
    owner_->requests_in_flight--;
    s->q.pop_front();
    engine_->Emit(std::move(ev));
    CloseSession(s, "takeover");
  }

  void Finish(Session* s, Exchange* ex) {
    if (ex->up) {
      Upstream* u = ex->up;
      ex->up = nullptr;
      bool reusable = ex->resp_done && ex->req_done && ex->resp.keep_alive && u->in.empty() && u->out.empty() && !u->eof &&
                      (ex->d.max_requests_per_connection == 0 || u->requests < ex->d.max_requests_per_connection) && ex->skipped == 0;
      if (reusable)
        Release(u);
      else
        KillUpstream(u);
    }
    if (!ex->local_error) {
      Event ev;
      ev.type = EventType::kResult;
      ev.id = ex->id;
      ev.session = s->id;
      ev.status = ex->status;
      ev.request_bytes = ex->req_bytes;
      ev.response_bytes = ex->resp_bytes;
      ev.duration_us = NowUs() - ex->start_us;
      ev.outcome = ex->outcome;
      ev.failure = ex->failure;
      ev.detail = ex->detail;
      ev.target_addr = ex->target;
      ev.reused = ex->reused;
      engine_->Emit(std::move(ev));
      engine_->Unroute(ex->id);
      exchange_session_.erase(ex->id);
      owner_->requests_in_flight--;
    }
    if (ex->close_after) {
      s->closing = true;
      s->parse_blocked = true;
      if (s->close_reason == "eof") s->close_reason = "connection_close";
    }
    s->q.pop_front();
    s->idle_since_us = NowUs();
  }

  void CloseSession(Session* s, const std::string& reason) {
    if (s->dead) return;
    s->dead = true;
    for (auto& ex : s->q) {
      if (ex->up) {
        KillUpstream(ex->up);
        ex->up = nullptr;
      }
      if (ex->local_error) continue;
      Event ev;
      ev.type = EventType::kResult;
      ev.id = ex->id;
      ev.session = s->id;
      ev.status = ex->status;
      ev.request_bytes = ex->req_bytes;
      ev.response_bytes = ex->resp_bytes;
      ev.duration_us = NowUs() - ex->start_us;
      ev.outcome = "aborted";
      ev.failure = ex->failure.empty() ? (reason == "closed" ? "closed" : "client_closed") : ex->failure;
      ev.detail = ex->detail.empty() ? s->close_detail : ex->detail;
      ev.target_addr = ex->target;
      ev.reused = ex->reused;
      engine_->Emit(std::move(ev));
      engine_->Unroute(ex->id);
      exchange_session_.erase(ex->id);
      owner_->requests_in_flight--;
    }
    s->q.clear();
    if (s->fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, s->fd, nullptr);
      CloseFd(s->fd);
    }
    s->in.Release();
    s->out.Release();
    Event ev;
    ev.type = EventType::kClosed;
    ev.id = s->id;
    ev.session = s->id;
    ev.reason = reason;
    ev.detail = s->close_detail;
    ev.requests = s->requests;
    ev.request_bytes = s->bytes_in;
    ev.response_bytes = s->bytes_out;
    engine_->Emit(std::move(ev));
    owner_->sessions--;
    auto it = sessions_.find(s->id);
    if (it != sessions_.end()) {
      graveyard_sessions_.push_back(std::move(it->second));
      sessions_.erase(it);
    }
  }

  // --- upstream side ---

  void Acquire(Session* s, Exchange* ex) {
    const Decision& d = ex->d;
    if (!ex->fresh_only) {
      for (;;) {
        auto pit = idle_.find(ex->pool_key);  // looked up again each turn: KillUpstream may erase the entry
        if (pit == idle_.end()) break;
        if (pit->second.empty()) {
          idle_.erase(pit);
          break;
        }
        uint64_t uid = pit->second.back();
        pit->second.pop_back();
        Upstream* u = FindUpstream(uid);
        if (u == nullptr || u->state != UpState::kIdle) continue;
        owner_->upstreams_idle--;
        u->state = UpState::kBusy;  // out of the pool: KillUpstream leaves the pool alone
        if (d.max_requests_per_connection > 0 && u->requests >= d.max_requests_per_connection) {
          KillUpstream(u);
          continue;
        }
        u->session = s->id;
        ex->up = u;
        ex->reused = true;
        owner_->upstream_reuses++;
        return;
      }
    }
    ex->reused = false;
    if (!d.pair.empty()) {
      AcquirePair(s, ex);
      return;
    }
    sockaddr_storage ss{};
    socklen_t sl = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, d.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(static_cast<uint16_t>(d.port));
      sl = sizeof(*v4);
    } else if (inet_pton(AF_INET6, d.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(static_cast<uint16_t>(d.port));
      sl = sizeof(*v6);
    } else {
      UpstreamFailed(s, ex, "connect_failed", "upstream host " + d.host + " is not a numeric address");
      return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      UpstreamFailed(s, ex, "connect_failed", std::string("socket: ") + std::strerror(errno));
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!d.source.empty() && !BindSource(fd, ss.ss_family, d.source)) {
      int err = errno;
      close(fd);
      UpstreamFailed(s, ex, "connect_failed", "bind to source " + d.source + " for " + ex->target + ": " + std::strerror(err));
      return;
    }
    owner_->upstream_connects++;
    if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0 && errno != EINPROGRESS) {
      int err = errno;
      close(fd);
      UpstreamFailed(s, ex, "connect_failed", "connect to " + ex->target + ": " + std::strerror(err));
      return;
    }
    auto up = std::make_unique<Upstream>();
    Upstream* u = up.get();
    u->id = engine_->NextId();
    u->fd = fd;
    u->key = ex->pool_key;
    u->state = UpState::kConnecting;
    u->session = s->id;
    int64_t timeout = d.connect_timeout_ms > 0 ? d.connect_timeout_ms : opts_.connect_timeout_ms;
    u->connect_deadline_us = NowUs() + timeout * 1000;
    upstreams_[u->id] = std::move(up);
    owner_->upstreams++;
    ex->up = u;
    if (!AddToEpoll(fd, Tag(u->id, kTagUpstream))) {
      UpstreamFailed(s, ex, "connect_failed", std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
  }

  // A new upstream connection that JavaScript carries (decision.pair): one end of a socketpair is the upstream (it is
  // writable at once, so it leaves kConnecting on the first epoll turn, and the request waits in the socket buffer
  // until JavaScript attaches the other end); the other end goes to JavaScript. Closing it before a response is an
  // upstream reset, as a TCP upstream's.
  void AcquirePair(Session* s, Exchange* ex) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
      UpstreamFailed(s, ex, "connect_failed", std::string("socketpair: ") + std::strerror(errno));
      return;
    }
    owner_->upstream_connects++;
    auto up = std::make_unique<Upstream>();
    Upstream* u = up.get();
    u->id = engine_->NextId();
    u->fd = sv[0];
    u->key = ex->pool_key;
    u->state = UpState::kConnecting;
    u->session = s->id;
    int64_t timeout = ex->d.connect_timeout_ms > 0 ? ex->d.connect_timeout_ms : opts_.connect_timeout_ms;
    u->connect_deadline_us = NowUs() + timeout * 1000;
    upstreams_[u->id] = std::move(up);
    owner_->upstreams++;
    ex->up = u;
    if (!AddToEpoll(sv[0], Tag(u->id, kTagUpstream))) {
      close(sv[1]);
      UpstreamFailed(s, ex, "connect_failed", std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
    Event ev;
    ev.type = EventType::kUpstreamPair;
    ev.id = ex->id;
    ev.session = s->id;
    ev.fd = sv[1];
    ev.target_addr = ex->d.pair;
    engine_->Emit(std::move(ev));
  }

  // Binds `fd` to `source` (port chosen at connect time, so that a fixed source does not run out of ports).
  static bool BindSource(int fd, int family, const std::string& source) {
    sockaddr_storage ss{};
    socklen_t sl = 0;
    if (family == AF_INET) {
      auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
      if (inet_pton(AF_INET, source.c_str(), &v4->sin_addr) != 1) {
        errno = EAFNOSUPPORT;
        return false;
      }
      v4->sin_family = AF_INET;
      sl = sizeof(*v4);
    } else {
      auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
      if (inet_pton(AF_INET6, source.c_str(), &v6->sin6_addr) != 1) {
        errno = EAFNOSUPPORT;
        return false;
      }
      v6->sin6_family = AF_INET6;
      sl = sizeof(*v6);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    return bind(fd, reinterpret_cast<sockaddr*>(&ss), sl) == 0;
  }

  void Release(Upstream* u) {
    u->state = UpState::kIdle;
    u->session = 0;
    u->idle_since_us = NowUs();
    u->in.Release();
    u->out.Release();
    auto& pool = idle_[u->key];
    if (pool.size() >= opts_.max_idle_per_target) {
      KillUpstream(u);
      return;
    }
    pool.push_back(u->id);
    owner_->upstreams_idle++;
  }

  void KillUpstream(Upstream* u) {
    if (u->dead) return;
    u->dead = true;
    if (u->state == UpState::kIdle) {
      owner_->upstreams_idle--;
      auto pit = idle_.find(u->key);
      if (pit != idle_.end()) {
        auto& v = pit->second;
        v.erase(std::remove(v.begin(), v.end(), u->id), v.end());
        if (v.empty()) idle_.erase(pit);
      }
    }
    if (u->fd >= 0) {
      epoll_ctl(epfd_, EPOLL_CTL_DEL, u->fd, nullptr);
      CloseFd(u->fd);
    }
    owner_->upstreams--;
    auto it = upstreams_.find(u->id);
    if (it != upstreams_.end()) {
      graveyard_upstreams_.push_back(std::move(it->second));
      upstreams_.erase(it);
    }
  }

  void OnUpstreamIo(Upstream* u, uint32_t e) {
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) u->rd_ready = true;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) u->wr_ready = true;
    if (u->state == UpState::kIdle) {
      // A pooled connection that becomes readable was closed by the server (or sent something unasked): drop it.
      if (u->rd_ready) KillUpstream(u);
      return;
    }
    Session* s = FindSession(u->session);
    if (s == nullptr || s->q.empty() || s->q.front()->up != u) {
      KillUpstream(u);
      return;
    }
    Exchange* ex = s->q.front().get();
    if (u->state == UpState::kConnecting) {
      if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (e & (EPOLLERR | EPOLLHUP))) {
        UpstreamFailed(s, ex, "connect_failed", "connect to " + ex->target + ": " + std::strerror(err ? err : ECONNREFUSED));
        Pump(s);
        return;
      }
      u->state = UpState::kBusy;
    }
    Pump(s);
  }

  void StartForwarding(Session* s, Exchange* ex) {
    Upstream* u = ex->up;
    const Head& h = ex->head;
    const Decision& d = ex->d;
    u->requests++;
    ex->phase = Phase::kForwarding;
    ex->outcome = "forwarded";
    std::string o;
    o.reserve(512);
    o += h.method;
    o += ' ';
    o += d.has_path ? d.path : h.target;
    o += " HTTP/1.1\r\n";
    bool has_host = false;
    bool had_length = false;
    for (auto& [n, v] : h.headers) {
      if (n == "content-length") had_length = true;
      if (IsHopByHop(n) || n == "expect" || Listed(h.connection_tokens, n) || Listed(d.remove_headers, n)) continue;
      bool replaced = false;
      for (auto& sh : d.set_headers)
        if (sh.first == n) replaced = true;
      if (replaced) continue;
      if (n == "host") has_host = true;
      o += n;
      o += ": ";
      o += v;
      o += "\r\n";
    }
    for (auto& [n, v] : d.set_headers) {
      if (n == "host") has_host = true;
      o += n + ": " + v + "\r\n";
    }
    if (!has_host && !h.authority.empty() && !Listed(d.remove_headers, "host")) o += "host: " + h.authority + "\r\n";
    if (h.body == BodyKind::kLength)
      o += "content-length: " + std::to_string(h.content_length) + "\r\n";
    else if (h.body == BodyKind::kChunked)
      o += "transfer-encoding: chunked\r\n";
    else if (had_length)
      o += "content-length: 0\r\n";
    o += "\r\n";
    u->out.Append(o);
    if (h.expect_continue && !ex->req_done && !ex->sent_continue) {
      s->out.Append("HTTP/1.1 100 Continue\r\n\r\n");
      ex->sent_continue = true;
    }
    int64_t rt = d.response_timeout_ms > 0 ? d.response_timeout_ms : opts_.response_timeout_ms;
    ex->deadline_us = NowUs() + rt * 1000;
  }

  bool Forward(Session* s, Exchange* ex) {
    Upstream* u = ex->up;
    bool moved = false;
    if (!ex->req_done) {
      size_t before = s->in.size();
      if (!ConsumeBody(s, ex, &u->out)) return true;
      if (s->in.size() != before) moved = true;
      if (ex->req_done) {
        int64_t rt = ex->d.response_timeout_ms > 0 ? ex->d.response_timeout_ms : opts_.response_timeout_ms;
        ex->deadline_us = NowUs() + rt * 1000;
      }
    }
    // upstream write
    while (u->wr_ready && !u->out.empty()) {
      ssize_t n = send(u->fd, u->out.data(), u->out.size(), MSG_NOSIGNAL);
      if (n > 0) {
        u->out.Consume(static_cast<size_t>(n));
        moved = true;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        u->wr_ready = false;
        break;
      }
      u->err = errno;
      u->eof = true;
      u->out.Consume(u->out.size());
      break;
    }
    // upstream read
    while (u->rd_ready && !u->eof && u->in.size() < opts_.max_buffer) {
      size_t room = std::min(rbuf_.size(), opts_.max_buffer - u->in.size());
      ssize_t n = read(u->fd, rbuf_.data(), room);
      if (n > 0) {
        u->in.Append(rbuf_.data(), static_cast<size_t>(n));
        moved = true;
        continue;
      }
      if (n == 0) {
        u->eof = true;
        moved = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        u->rd_ready = false;
        break;
      }
      u->err = errno;
      u->eof = true;
      moved = true;
      break;
    }
    if (MoveResponse(s, ex)) moved = true;
    if (s->dead || s->q.empty() || s->q.front().get() != ex || ex->phase != Phase::kForwarding) return true;
    if (ex->resp_done) {
      if (!ex->req_done) {
        // The upstream answered before reading the whole body: drop the rest (bounded), the connection is not reused.
        KillUpstream(u);
        ex->up = nullptr;
        ex->phase = Phase::kLocal;
        return true;
      }
      Finish(s, ex);
      return true;
    }
    if (u->eof && u->in.empty()) {
      const char* why = u->err ? std::strerror(u->err) : "connection closed";
      UpstreamFailed(s, ex, "reset", "upstream " + ex->target + ": " + why + (ex->resp_head_done ? " during the response body" : " before the response"));
      return true;
    }
    return moved;
  }

  // Response head and body from the upstream input to the client output.
  bool MoveResponse(Session* s, Exchange* ex) {
    Upstream* u = ex->up;
    bool moved = false;
    while (!ex->resp_head_done) {
      if (u->in.empty()) return moved;
      Head resp;
      size_t consumed = 0;
      int status = 0;
      std::string detail;
      ParseResult r = ex->resp_parser.ParseResponse(u->in.view(), ex->head.method, &resp, &consumed, &status, &detail);
      if (r == ParseResult::kIncomplete) return moved;
      if (r == ParseResult::kError) {
        UpstreamFailed(s, ex, "protocol", "upstream " + ex->target + " sent a malformed response: " + detail);
        return true;
      }
      ex->resp_parser.Reset();
      u->in.Consume(consumed);
      moved = true;
      if (resp.status < 200) {
        if (resp.status == 101) {
          UpstreamFailed(s, ex, "protocol", "upstream " + ex->target + " switched protocols without an Upgrade request");
          return true;
        }
        if (resp.status != 100 && ex->head.minor == 1) s->out.Append(SerializeResponseHead(resp, OutFraming::kNone, false));
        continue;
      }
      ex->resp = std::move(resp);
      ex->resp_head_done = true;
      ex->status = ex->resp.status;
      bool client10 = ex->head.minor == 0;
      if (client10) ex->close_after = true;
      switch (ex->resp.body) {
        case BodyKind::kNone: ex->framing = OutFraming::kNone; break;
        case BodyKind::kLength:
          ex->framing = OutFraming::kRaw;
          ex->resp_remaining = ex->resp.content_length;
          break;
        case BodyKind::kChunked: ex->framing = client10 ? OutFraming::kDechunk : OutFraming::kRaw; break;
        case BodyKind::kUntilClose:
          ex->framing = client10 ? OutFraming::kRaw : OutFraming::kChunkEncode;
          if (client10) ex->close_after = true;
          break;
      }
      s->out.Append(SerializeResponseHead(ex->resp, ex->framing, ex->close_after));
      ex->resp_started = true;
      if (ex->resp.body == BodyKind::kNone) ex->resp_done = true;
    }
    while (!ex->resp_done && s->out.size() < opts_.max_buffer) {
      size_t room = opts_.max_buffer - s->out.size();
      if (u->in.empty()) {
        if (ex->resp.body == BodyKind::kUntilClose && u->eof) {
          if (ex->framing == OutFraming::kChunkEncode) s->out.Append("0\r\n\r\n");
          ex->resp_done = true;
          moved = true;
        }
        break;
      }
      size_t take = std::min(room, u->in.size());
      switch (ex->resp.body) {
        case BodyKind::kLength:
          take = static_cast<size_t>(std::min<uint64_t>(take, ex->resp_remaining));
          s->out.Append(u->in.data(), take);
          ex->resp_remaining -= take;
          ex->resp_bytes += take;
          u->in.Consume(take);
          if (ex->resp_remaining == 0) ex->resp_done = true;
          break;
        case BodyKind::kChunked: {
          spans_.clear();
          uint64_t before = ex->resp_chunks.data_bytes();
          size_t used = ex->resp_chunks.Feed(u->in.data(), take, &spans_, nullptr);
          if (ex->resp_chunks.error()) {
            ex->failure = "protocol";
            ex->detail = std::string("upstream sent a malformed chunked body: ") + ex->resp_chunks.error_detail();
            ex->close_after = true;
            ex->resp_done = true;
            KillUpstream(u);
            ex->up = nullptr;
            ex->req_done = true;
            Finish(s, ex);
            CloseSession(s, "upstream_error");
            return true;
          }
          if (ex->framing == OutFraming::kDechunk)
            for (auto& sp : spans_) s->out.Append(sp.p, sp.n);
          else
            s->out.Append(u->in.data(), used);
          ex->resp_bytes += ex->resp_chunks.data_bytes() - before;
          u->in.Consume(used);
          if (ex->resp_chunks.done()) ex->resp_done = true;
          break;
        }
        case BodyKind::kUntilClose: {
          if (ex->framing == OutFraming::kChunkEncode) {
            char sz[32];
            int len = snprintf(sz, sizeof(sz), "%zx\r\n", take);
            s->out.Append(sz, static_cast<size_t>(len));
            s->out.Append(u->in.data(), take);
            s->out.Append("\r\n", 2);
          } else {
            s->out.Append(u->in.data(), take);
          }
          ex->resp_bytes += take;
          u->in.Consume(take);
          break;
        }
        case BodyKind::kNone: break;
      }
      moved = true;
    }
    return moved;
  }

  std::string SerializeResponseHead(const Head& r, OutFraming framing, bool close) {
    std::string o = "HTTP/1.1 " + std::to_string(r.status) + " " + (r.reason.empty() ? std::string(ReasonPhrase(r.status)) : r.reason) + "\r\n";
    for (auto& [n, v] : r.headers) {
      if (IsHopByHop(n) || Listed(r.connection_tokens, n)) continue;
      o += n + ": " + v + "\r\n";
    }
    if (r.status >= 200) {
      if (framing == OutFraming::kRaw && r.body == BodyKind::kLength)
        o += "content-length: " + std::to_string(r.content_length) + "\r\n";
      else if ((framing == OutFraming::kRaw && r.body == BodyKind::kChunked) || framing == OutFraming::kChunkEncode)
        o += "transfer-encoding: chunked\r\n";
      else if (framing == OutFraming::kNone) {
        for (auto& [n, v] : r.headers)
          if (n == "content-length") o += "content-length: " + v + "\r\n";
      }
      if (close) o += "connection: close\r\n";
    }
    o += "\r\n";
    return o;
  }

  // The upstream failed: retried once on a fresh connection when nothing can have been processed (stale pooled
  // connection, no body); else JavaScript may reply() while nothing of the response reached the client.
  void UpstreamFailed(Session* s, Exchange* ex, const std::string& failure, const std::string& detail) {
    bool stale_retry = failure == "reset" && ex->reused && !ex->resp_head_done && ex->head.body == BodyKind::kNone && ex->attempts == 0;
    if (ex->up) {
      KillUpstream(ex->up);
      ex->up = nullptr;
    }
    if (stale_retry) {
      ex->attempts++;
      ex->fresh_only = true;
      ex->phase = Phase::kConnecting;
      Acquire(s, ex);
      return;
    }
    ex->failure = failure;
    ex->detail = detail;
    if (!ex->resp_started) {
      ex->phase = Phase::kAwaitReply;
      ex->deadline_us = NowUs() + opts_.decision_timeout_ms * 1000;
      Event ev;
      ev.type = EventType::kFailed;
      ev.id = ex->id;
      ev.session = s->id;
      ev.failure = failure;
      ev.detail = detail;
      ev.target_addr = ex->target;
      ev.reused = ex->reused;
      engine_->Emit(std::move(ev));
      return;
    }
    // Part of the response is out: the client can only learn of the failure by the connection closing.
    ex->close_after = true;
    ex->req_done = true;
    ex->resp_done = true;
    Finish(s, ex);
    s->close_detail = detail;
    CloseSession(s, "upstream_error");
  }

  Worker* owner_;
  Engine* engine_;
  Options opts_;
  HeadLimits limits_;
  int index_;
  int epfd_ = -1;
  int wakefd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<std::function<void(WorkerImpl&)>> commands_;
  std::vector<char> rbuf_;
  std::vector<ChunkDecoder::Span> spans_;
  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::unordered_map<uint64_t, std::unique_ptr<Upstream>> upstreams_;
  std::unordered_map<std::string, std::vector<uint64_t>> idle_;
  std::unordered_map<uint64_t, uint64_t> exchange_session_;
  std::vector<std::unique_ptr<Session>> graveyard_sessions_;
  std::vector<std::unique_ptr<Upstream>> graveyard_upstreams_;
};

Worker::Worker(Engine* engine, int index) : impl_(std::make_unique<WorkerImpl>(this, engine, index)) {}
Worker::~Worker() = default;
void Worker::Start() { impl_->Start(); }
void Worker::Stop() { impl_->Stop(); }
void Worker::Post(std::function<void(WorkerImpl&)> fn) { impl_->Post(std::move(fn)); }
void Worker::Serve(ServeCommand cmd) {
  Post([cmd = std::move(cmd)](WorkerImpl& w) mutable { w.DoServe(std::move(cmd)); });
}
void Worker::Decide(uint64_t request, Decision d) {
  Post([request, d = std::move(d)](WorkerImpl& w) mutable { w.DoDecide(request, std::move(d)); });
}
void Worker::Reply(uint64_t request, Decision d) {
  Post([request, d = std::move(d)](WorkerImpl& w) mutable { w.DoReply(request, std::move(d)); });
}
void Worker::CloseSession(uint64_t session) {
  Post([session](WorkerImpl& w) { w.DoCloseSession(session); });
}

void Worker::CloseAll() {
  Post([](WorkerImpl& w) { w.DoCloseAll(); });
}

}  // namespace smesh::http1
