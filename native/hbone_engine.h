// Internals of the native HBONE engine shared by its worker (hbone_worker.cc) and its N-API surface (hbone.cc):
// options, the events that go back to JavaScript, the engine-wide stream registry and the worker interface.
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

#include "hbone_qos.h"
#include "hbone_tls.h"

namespace smesh::hbone {

struct Options {
  int workers = 1;
  int32_t stream_window = 4 * 1024 * 1024;
  int32_t connection_window = 16 * 1024 * 1024;
  uint32_t max_concurrent_streams = 100;
  int64_t idle_timeout_ms = 300000;
  int64_t connect_timeout_ms = 10000;
  uint32_t max_early_resets = 100;
  int64_t liveness_check_ms = 2000;
  // Relay scheduling: priority classes + deficit round robin between source workloads (off: FIFO as epoll reports).
  bool fair_share = true;
  // Fair share: bytes a worker grants per loop turn before it asks epoll again (a newly ready stream waits at most this).
  uint64_t turn_bytes = 256 * 1024;
  // Nice value of the worker threads (0: inherit the process's).
  int worker_nice = 0;
};

// Bytes a source workload's streams moved through the engine (for /config_dump), shared by all workers.
struct FlowStats {
  std::string key;
  std::atomic<uint64_t> sent{0}, received{0};
  std::atomic<int> priority{1};
  std::atomic<uint32_t> weight{qos::kDefaultWeight};
};

// QoS attributes of one attached stream; an empty `flow` means none (normal class, default weight, no limits).
struct StreamQos {
  std::string flow;
  qos::Priority priority = qos::Priority::kNormal;
  uint32_t weight = qos::kDefaultWeight;
  int dscp = -1;
  std::shared_ptr<qos::ByteLimits> send_limit;     // fd → tunnel (every rule's bucket that way)
  std::shared_ptr<qos::ByteLimits> receive_limit;  // tunnel → fd
  std::shared_ptr<FlowStats> stats;
};

enum class EventType { kOpen, kStream, kDone, kEnded, kSession };

// One record for JavaScript; which fields matter depends on `type` (see agent/native/hbone.ts RawHboneEvent).
struct Event {
  EventType type = EventType::kDone;
  uint64_t id = 0;       // stream id; session id for kSession
  uint64_t session = 0;  // kStream: the session carrying it
  // kOpen
  bool ok = false;
  std::string kind;  // failure kind
  int status = 0;
  std::string message;
  std::string peer_id;
  bool has_peer_id = false;
  // kStream
  std::string authority;
  std::vector<std::string> headers;  // name, value, name, value, ...
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
  // kDone / kEnded
  uint64_t sent = 0, received = 0;
  std::string outcome;
  std::string side;
  int64_t h2_code = -1;
  int err = 0;
  // kSession
  std::string session_type;  // handshake_failed | session_closed
  bool inbound = false;
  std::string reason;
  std::string remote;
  std::string detail;
};

// Live per-stream byte counts, readable from the JS thread while a worker adds to them.
struct StreamCounters {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<bool> attached{false};
  int worker = 0;
  bool inbound = false;
};

struct OpenCommand {
  uint64_t id = 0;
  std::string source_id;
  std::string host;
  int port = 0;
  std::vector<std::string> accept_ids;
  std::string authority;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t start_ms = 0;
  // DSCP for the HBONE session's socket (sessions are pooled per DSCP too); -1 = not marked.
  int dscp = -1;
};

struct ServeCommand {
  uint64_t session = 0;
  int fd = -1;
  std::shared_ptr<TlsIdentity> identity;
  std::string local_address, remote_address;
  int local_port = 0, remote_port = 0;
};

class Engine;
class WorkerImpl;

// One epoll thread owning its sessions and streams; every call here only queues a command and wakes the thread.
class Worker {
 public:
  Worker(Engine* engine, int index);
  ~Worker();
  void Start();
  void Stop();
  void Open(OpenCommand cmd);
  void Serve(ServeCommand cmd);
  void Respond(uint64_t stream, int status);
  // Takes ownership of `fd` (already a dup, non-blocking).
  void Attach(uint64_t stream, int fd, std::string pending, StreamQos qos);
  void Abort(uint64_t stream);
  void CloseAll();
  // Graceful shutdown: GOAWAY NO_ERROR to inbound peers, no new streams on pooled outbound sessions.
  void Drain();
  void RetireSource(const std::string& source_id);

  // Gauges for stats(), updated by the worker thread.
  std::atomic<int64_t> sessions_in{0}, sessions_out{0}, streams_in{0}, streams_out{0}, buffered{0};

 private:
  void Post(std::function<void(WorkerImpl&)> fn);
  std::unique_ptr<WorkerImpl> impl_;
  friend class WorkerImpl;
};

int64_t NowMs();
int64_t NowNs();

// Process-wide engine bound to the first Node environment that uses it.
class Engine {
 public:
  Engine(const Options& options, TlsStore* tls) : options_(options), tls_(tls) {}
  virtual ~Engine() = default;

  const Options& options() const { return options_; }
  TlsStore& tls() { return *tls_; }
  uint64_t NextId() { return next_id_.fetch_add(1); }

  void Register(uint64_t id, std::shared_ptr<StreamCounters> c) {
    std::lock_guard<std::mutex> lock(registry_mu_);
    registry_[id] = std::move(c);
  }
  void Unregister(uint64_t id) {
    std::lock_guard<std::mutex> lock(registry_mu_);
    registry_.erase(id);
  }
  std::shared_ptr<StreamCounters> Lookup(uint64_t id) {
    std::lock_guard<std::mutex> lock(registry_mu_);
    auto it = registry_.find(id);
    return it == registry_.end() ? nullptr : it->second;
  }
  // [id, sent, received] of every attached stream.
  std::vector<double> Counters() {
    std::vector<double> out;
    std::lock_guard<std::mutex> lock(registry_mu_);
    for (auto& [id, c] : registry_) {
      if (!c->attached.load(std::memory_order_relaxed)) continue;
      out.push_back(static_cast<double>(id));
      out.push_back(static_cast<double>(c->sent.load(std::memory_order_relaxed)));
      out.push_back(static_cast<double>(c->received.load(std::memory_order_relaxed)));
    }
    return out;
  }

  qos::BucketRegistry& buckets() { return buckets_; }
  std::shared_ptr<FlowStats> Flow(const std::string& key) {
    std::lock_guard<std::mutex> lock(flows_mu_);
    auto& f = flows_[key];
    if (!f) {
      f = std::make_shared<FlowStats>();
      f->key = key;
    }
    return f;
  }
  std::vector<std::shared_ptr<FlowStats>> Flows() {
    std::lock_guard<std::mutex> lock(flows_mu_);
    std::vector<std::shared_ptr<FlowStats>> out;
    for (auto& [k, f] : flows_) out.push_back(f);
    return out;
  }

  // Worker threads: queue an event for JavaScript (batched; one wake-up per non-empty queue).
  virtual void Emit(Event&& ev) = 0;

 protected:
  Options options_;
  TlsStore* tls_;
  std::atomic<uint64_t> next_id_{1};
  std::mutex registry_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<StreamCounters>> registry_;
  qos::BucketRegistry buckets_;
  std::mutex flows_mu_;
  std::unordered_map<std::string, std::shared_ptr<FlowStats>> flows_;
};

}  // namespace smesh::hbone
