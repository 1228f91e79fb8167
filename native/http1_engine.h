// Internals of the native HTTP/1.1 engine shared by its worker (http1_worker.cc) and its N-API surface (http1.cc):
// options, per-request decisions from JavaScript, the events that go back, and the worker interface.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace smesh::http1 {

struct Options {
  int workers = 1;
  size_t max_head_bytes = 64 * 1024;
  size_t max_headers = 100;
  size_t max_request_line = 8 * 1024;
  size_t max_pipelined = 16;                 // parsed, unfinished requests per client connection
  size_t max_buffer = 256 * 1024;            // per direction and connection before reading stops
  size_t max_skip_body = 1024 * 1024;        // a refused request's body is read and dropped up to this, else the connection closes
  int64_t connect_timeout_ms = 5000;         // upstream connect
  int64_t response_timeout_ms = 60000;       // request sent → response head
  int64_t decision_timeout_ms = 10000;       // request posted → decide()/reply(), else 503
  int64_t header_timeout_ms = 10000;         // first byte of a head → its end, else 408 and close
  int64_t client_idle_timeout_ms = 300000;   // keep-alive client connection with nothing in flight
  int64_t upstream_idle_timeout_ms = 60000;  // pooled upstream connection unused
  uint32_t max_idle_per_target = 64;
};

// What JavaScript decided for one request.
struct Decision {
  enum class Kind { kDeny, kForward, kTakeover } kind = Kind::kDeny;
  // deny (and reply after an upstream failure)
  int status = 403;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // forward
  std::string host;  // numeric IPv4/IPv6 (unused with `pair`)
  int port = 0;
  // Non-empty: no TCP connect; a new upstream connection is a socketpair whose other end goes to JavaScript
  // (EventType::kUpstreamPair) to be carried on (an HBONE stream); pooled under this key.
  std::string pair;
  std::string source;                                            // numeric address of host's family to connect from ("" = the kernel's choice); pooled apart
  std::vector<std::pair<std::string, std::string>> set_headers;  // replace every field of that name (lower-case)
  std::vector<std::string> remove_headers;                       // lower-case
  bool has_path = false;
  std::string path;
  uint32_t max_requests_per_connection = 0;  // 0: unlimited
  int64_t connect_timeout_ms = 0;            // 0: engine default
  int64_t response_timeout_ms = 0;
};

enum class EventType { kRequest, kFailed, kResult, kTakeover, kClosed, kUpstreamPair };

// One record for JavaScript; which fields matter depends on `type` (see agent/native/http1.ts RawHttp1Event).
struct Event {
  EventType type = EventType::kResult;
  uint64_t id = 0;  // request id (session id for kClosed)
  uint64_t session = 0;
  // kRequest
  std::string method, target, authority;
  int minor = 1;
  std::vector<std::string> headers;  // name, value, ...
  std::string body_kind;             // none | length | chunked
  uint64_t content_length = 0;
  bool upgrade = false, expect_continue = false, keep_alive = true;
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
  // kFailed / kResult (kClosed: bytes read from / written to the client socket)
  int status = 0;
  uint64_t request_bytes = 0, response_bytes = 0;
  int64_t duration_us = 0;
  std::string outcome;  // kResult: forwarded | denied | replied | aborted
  std::string failure;  // connect_failed | reset | timeout | protocol | client_closed
  std::string detail;
  std::string target_addr;
  bool reused = false;
  // kTakeover (the client socket), kUpstreamPair (JavaScript's end of a new upstream socketpair; target_addr: the pair key)
  int fd = -1;
  std::string pending;
  // kClosed
  std::string reason;
  uint64_t requests = 0;
};

class Engine;
class WorkerImpl;

struct ServeCommand {
  uint64_t session = 0;
  int fd = -1;
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
  size_t max_head_bytes = 0;  // 0: Options::max_head_bytes
};

// One epoll thread owning client sessions and upstream pools; every call only queues a command and wakes the thread.
class Worker {
 public:
  Worker(Engine* engine, int index);
  ~Worker();
  void Start();
  void Stop();
  void Serve(ServeCommand cmd);
  void Decide(uint64_t request, Decision d);
  void Reply(uint64_t request, Decision d);
  void CloseAll();
  void CloseSession(uint64_t session);  // no-op when this worker does not serve it

  std::atomic<int64_t> sessions{0}, requests_in_flight{0}, upstreams{0}, upstreams_idle{0}, buffered{0};
  std::atomic<uint64_t> requests_total{0}, bad_requests{0}, upstream_connects{0}, upstream_reuses{0};

 private:
  void Post(std::function<void(WorkerImpl&)> fn);
  std::unique_ptr<WorkerImpl> impl_;
  friend class WorkerImpl;
};

int64_t NowUs();

// Process-wide engine bound to the first Node environment that uses it.
class Engine {
 public:
  explicit Engine(const Options& options) : options_(options) {}
  virtual ~Engine() = default;
  const Options& options() const { return options_; }
  uint64_t NextId() { return next_id_.fetch_add(1); }

  // request id → worker index, while JavaScript may still decide or reply.
  void Route(uint64_t id, int worker) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_[id] = worker;
  }
  void Unroute(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    routes_.erase(id);
  }
  int WorkerOf(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = routes_.find(id);
    return it == routes_.end() ? -1 : it->second;
  }

  virtual void Emit(Event&& ev) = 0;

 protected:
  Options options_;
  std::atomic<uint64_t> next_id_{1};
  std::mutex mu_;
  std::unordered_map<uint64_t, int> routes_;
};

}  // namespace smesh::http1
