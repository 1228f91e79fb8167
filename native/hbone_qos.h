// Relay QoS of the HBONE engine as pure classes (no sockets, injected clocks): byte token buckets shared by the
// workers, and the per-worker scheduler that orders ready streams by priority class, then by deficit round robin
// between source workloads in proportion to their weights. Exercised deterministically through hboneQosSimulate.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace smesh::hbone::qos {

enum class Priority : uint8_t { kLatency = 0, kNormal = 1, kBulk = 2 };
constexpr int kClasses = 3;
constexpr uint32_t kDefaultWeight = 100;
// Bytes a weight-100 flow may move per DRR visit (one HTTP/2 DATA frame's worth).
constexpr uint64_t kQuantumPerWeight100 = 16 * 1024;
// The engine never paces faster than this (1 Tbit/s); keeps the bucket arithmetic in 64 bits for a year of uptime.
constexpr uint64_t kMaxRateBytes = 125000000000ULL;

// GCRA form of a token bucket over bytes: one atomic "theoretical arrival time" in byte units of the bucket's
// virtual clock (bytes earned since its creation at `rate` bytes/s). Lock-free, so every worker can charge the same
// bucket; a charge may overdraw (it is made after the bytes moved), which only delays the next grant — the long-run
// rate is exact and no byte is ever dropped.
class ByteBucket {
 public:
  ByteBucket(uint64_t rate_bytes, uint64_t burst_bytes, int64_t now_ns)
      : rate_(rate_bytes == 0 ? 1 : (rate_bytes > kMaxRateBytes ? kMaxRateBytes : rate_bytes)),
        burst_(burst_bytes == 0 ? 1 : burst_bytes),
        origin_ns_(now_ns),
        tat_(0) {}

  uint64_t rate() const { return rate_; }
  uint64_t burst() const { return burst_; }

  // Bytes that may move now (0: wait), at most the burst.
  uint64_t Available(int64_t now_ns) const {
    int64_t v = Earned(now_ns);
    int64_t tat = tat_.load(std::memory_order_acquire);
    int64_t base = tat > v ? tat : v;
    int64_t avail = v + static_cast<int64_t>(burst_) - base;
    return avail > 0 ? static_cast<uint64_t>(avail) : 0;
  }

  // Records `n` bytes that moved (after Available said they could; may overdraw a little under concurrency).
  void Consume(uint64_t n, int64_t now_ns) {
    if (n == 0) return;
    int64_t v = Earned(now_ns);
    int64_t tat = tat_.load(std::memory_order_relaxed);
    for (;;) {
      int64_t base = tat > v ? tat : v;
      if (tat_.compare_exchange_weak(tat, base + static_cast<int64_t>(n), std::memory_order_acq_rel)) break;
    }
    granted_.fetch_add(n, std::memory_order_relaxed);
    int64_t last = last_grant_ns_.load(std::memory_order_relaxed);
    while (now_ns > last && !last_grant_ns_.compare_exchange_weak(last, now_ns, std::memory_order_relaxed)) {
    }
  }

  // Nanoseconds until at least min(want, burst) bytes are available.
  int64_t WaitNs(uint64_t want, int64_t now_ns) const {
    if (want > burst_) want = burst_;
    int64_t v = Earned(now_ns);
    int64_t tat = tat_.load(std::memory_order_acquire);
    int64_t base = tat > v ? tat : v;
    int64_t short_by = base + static_cast<int64_t>(want) - (v + static_cast<int64_t>(burst_));
    if (short_by <= 0) return 0;
    return static_cast<int64_t>((static_cast<__int128>(short_by) * 1000000000 + rate_ - 1) / rate_);
  }

  // A side paused on this bucket; `bytes` is what was known to wait (0 when unknown, e.g. a socket's backlog).
  void NoteThrottle(uint64_t bytes) {
    throttles_.fetch_add(1, std::memory_order_relaxed);
    throttled_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // Bytes that moved only after waiting for this bucket.
  void NoteDelayed(uint64_t bytes) { delayed_bytes_.fetch_add(bytes, std::memory_order_relaxed); }

  uint64_t granted() const { return granted_.load(std::memory_order_relaxed); }
  uint64_t throttles() const { return throttles_.load(std::memory_order_relaxed); }
  uint64_t delayed_bytes() const { return delayed_bytes_.load(std::memory_order_relaxed); }
  int64_t origin_ns() const { return origin_ns_; }
  int64_t last_grant_ns() const { return last_grant_ns_.load(std::memory_order_relaxed); }
  // Full again: a new bucket with the same settings would behave the same.
  bool Full(int64_t now_ns) const { return Available(now_ns) >= burst_; }

 private:
  int64_t Earned(int64_t now_ns) const {
    int64_t dt = now_ns - origin_ns_;
    if (dt < 0) dt = 0;
    return static_cast<int64_t>(static_cast<__int128>(dt) * rate_ / 1000000000);
  }

  const uint64_t rate_;
  const uint64_t burst_;
  const int64_t origin_ns_;
  std::atomic<int64_t> tat_;
  std::atomic<uint64_t> granted_{0};
  std::atomic<uint64_t> throttles_{0};
  std::atomic<uint64_t> throttled_bytes_{0};
  std::atomic<uint64_t> delayed_bytes_{0};
  std::atomic<int64_t> last_grant_ns_{0};
};

// Every bytes/s bucket that applies to one side of a stream (one per TrafficShaping rule that sets a rate that way:
// e.g. a per-connection-group limit and a workload-wide one): bytes move only as fast as the tightest allows, and
// every bucket is charged, so each rule's own limit holds for all the streams that share it. Owned by one stream
// (one worker); the buckets themselves are shared.
class ByteLimits {
 public:
  explicit ByteLimits(std::vector<std::shared_ptr<ByteBucket>> buckets) : buckets_(std::move(buckets)) {}

  size_t size() const { return buckets_.size(); }
  const ByteBucket& at(size_t i) const { return *buckets_[i]; }

  // The smallest burst: the most one grant can ever be.
  uint64_t burst() const {
    uint64_t b = UINT64_MAX;
    for (const auto& x : buckets_) b = std::min<uint64_t>(b, x->burst());
    return b;
  }

  uint64_t Available(int64_t now_ns) const {
    uint64_t a = UINT64_MAX;
    for (const auto& x : buckets_) a = std::min<uint64_t>(a, x->Available(now_ns));
    return a;
  }

  void Consume(uint64_t n, int64_t now_ns) {
    for (auto& x : buckets_) x->Consume(n, now_ns);
  }

  // Until every bucket has min(want, its burst) available.
  int64_t WaitNs(uint64_t want, int64_t now_ns) const {
    int64_t w = 0;
    for (const auto& x : buckets_) w = std::max<int64_t>(w, x->WaitNs(want, now_ns));
    return w;
  }

  // A pause: counted on the buckets that were short of `want` (those the pause waits for); NoteDelayed then goes to them.
  void NoteThrottle(uint64_t bytes, uint64_t want, int64_t now_ns) {
    short_mask_ = 0;
    for (size_t i = 0; i < buckets_.size() && i < 64; i++) {
      if (buckets_[i]->Available(now_ns) < std::min<uint64_t>(want, buckets_[i]->burst())) {
        short_mask_ |= uint64_t{1} << i;
        buckets_[i]->NoteThrottle(bytes);
      }
    }
  }

  void NoteDelayed(uint64_t bytes) {
    for (size_t i = 0; i < buckets_.size() && i < 64; i++)
      if (short_mask_ == 0 || (short_mask_ & (uint64_t{1} << i)) != 0) buckets_[i]->NoteDelayed(bytes);
  }

 private:
  std::vector<std::shared_ptr<ByteBucket>> buckets_;
  uint64_t short_mask_ = 0;
};

// Burst of a bucket: 100 ms at the rate, at least 16 KiB (one DATA frame, so a slow limit still moves whole frames).
inline uint64_t DefaultBurst(uint64_t rate_bytes) {
  uint64_t b = rate_bytes / 10;
  return b < 16384 ? 16384 : b;
}

// Engine-wide registry: connections naming the same key (and rate) share one bucket, whichever worker runs them.
class BucketRegistry {
 public:
  std::shared_ptr<ByteBucket> Get(const std::string& key, uint64_t rate_bytes, int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    std::string k = key + "#" + std::to_string(rate_bytes);
    auto it = buckets_.find(k);
    if (it != buckets_.end()) return it->second.bucket;
    // A full bucket nobody holds is the same as a new one: forget those (bounded map, no timer).
    for (auto i = buckets_.begin(); i != buckets_.end();) {
      const Entry& e = i->second;
      if (e.bucket.use_count() == 1 && e.bucket->Full(now_ns) && e.bucket->delayed_bytes() == e.reported_delayed &&
          e.bucket->throttles() == e.reported_throttles)
        i = buckets_.erase(i);
      else
        ++i;
    }
    auto b = std::make_shared<ByteBucket>(rate_bytes, DefaultBurst(rate_bytes), now_ns);
    buckets_[k] = Entry{key, b, 0, 0};
    return b;
  }

  struct Snapshot {
    std::string key;
    uint64_t rate, burst, available, granted, throttles, delayed;
    int64_t active_ns;  // last grant − creation, engine clock
    uint32_t holders;
  };
  std::vector<Snapshot> List(int64_t now_ns) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Snapshot> out;
    for (auto& [k, e] : buckets_) {
      const ByteBucket& b = *e.bucket;
      e.reported_delayed = b.delayed_bytes();
      e.reported_throttles = b.throttles();
      int64_t last = b.last_grant_ns();
      out.push_back({e.key, b.rate(), b.burst(), b.Available(now_ns), b.granted(), b.throttles(), b.delayed_bytes(),
                     last > b.origin_ns() ? last - b.origin_ns() : 0, static_cast<uint32_t>(e.bucket.use_count() - 1)});
    }
    return out;
  }

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<ByteBucket> bucket;
    // What List() last showed: a bucket is forgotten only once its counters were seen.
    uint64_t reported_delayed;
    uint64_t reported_throttles;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> buckets_;
};

// Deficit round robin (Shreedhar & Varghese) over flows (source workloads) inside strict priority classes. Items are
// streams with something to move; the caller asks Next() for a grant (item, byte allowance), moves at most that many
// bytes, and reports with Charge() what moved and whether the item is still ready. A flow gets weight × quantum/100
// bytes of credit per visit, so under contention flows move bytes in proportion to their weights whatever their
// number of streams or chunk sizes; an idle flow keeps no credit. Latency is served before normal before bulk.
class DrrScheduler {
 public:
  struct Grant {
    uint64_t item = 0;
    uint32_t flow = 0;
    uint64_t allowance = 0;
  };

  explicit DrrScheduler(uint64_t quantum_per_weight100 = kQuantumPerWeight100) : quantum_(quantum_per_weight100) {}

  bool empty() const { return ready_items_ == 0; }
  bool Contains(uint64_t item) const { return where_.count(item) != 0; }
  size_t ready() const { return ready_items_; }

  // Marks `item` ready (no-op when it already is). `flow`'s weight and class are updated by its latest item.
  void Ready(uint64_t item, uint32_t flow, Priority prio, uint32_t weight) {
    if (where_.count(item)) return;
    Flow& f = flows_[flow];
    f.weight = weight == 0 ? kDefaultWeight : weight;
    int cls = static_cast<int>(prio);
    if (f.items.empty()) {
      f.cls = cls;
      f.fresh = true;
      active_[cls].push_back(flow);
    }
    f.items.push_back(item);
    where_[item] = flow;
    ready_items_++;
  }

  // Forgets `item` (its stream ended).
  void Remove(uint64_t item) {
    auto it = where_.find(item);
    if (it == where_.end()) return;
    uint32_t flow = it->second;
    where_.erase(it);
    ready_items_--;
    Flow& f = flows_[flow];
    for (auto i = f.items.begin(); i != f.items.end(); ++i)
      if (*i == item) {
        f.items.erase(i);
        break;
      }
    if (f.items.empty()) Deactivate(flow, f);
  }

  // The next item to serve and how many bytes it may move; false when nothing is ready.
  bool Next(Grant* g) {
    for (int cls = 0; cls < kClasses; cls++) {
      auto& list = active_[cls];
      while (!list.empty()) {
        uint32_t flow = list.front();
        Flow& f = flows_[flow];
        if (f.fresh) {
          int64_t q = static_cast<int64_t>(quantum_ * f.weight / 100);
          if (q < 1) q = 1;
          // Credit never piles up past a few quanta (an item that could not move keeps being revisited).
          f.deficit = std::min<int64_t>(f.deficit + q, 4 * q);
          f.fresh = false;
        }
        if (f.deficit <= 0) {  // still in debt from an overdraw: next round
          Rotate(cls, f);
          continue;
        }
        g->item = f.items.front();
        g->flow = flow;
        g->allowance = static_cast<uint64_t>(f.deficit);
        return true;
      }
    }
    return false;
  }

  // After serving the grant of Next(): `moved` bytes moved; `still_ready` when the item has more right now.
  void Charge(const Grant& g, uint64_t moved, bool still_ready) {
    auto w = where_.find(g.item);
    if (w == where_.end()) return;  // removed meanwhile
    Flow& f = flows_[g.flow];
    f.deficit -= static_cast<int64_t>(moved);
    f.served += moved;
    f.items.pop_front();
    if (still_ready) {
      f.items.push_back(g.item);
    } else {
      where_.erase(w);
      ready_items_--;
    }
    if (f.items.empty()) {
      Deactivate(g.flow, f);
      return;
    }
    // Out of credit, or nothing moved (avoid spinning on an item that cannot move): the next flow's turn.
    if (f.deficit <= 0 || moved == 0) Rotate(f.cls, f);
  }

  uint64_t served(uint32_t flow) const {
    auto it = flows_.find(flow);
    return it == flows_.end() ? 0 : it->second.served;
  }

 private:
  struct Flow {
    uint32_t weight = kDefaultWeight;
    int cls = 1;
    int64_t deficit = 0;
    bool fresh = true;
    uint64_t served = 0;
    std::deque<uint64_t> items;
  };

  void Rotate(int cls, Flow& f) {
    auto& list = active_[cls];
    uint32_t flow = list.front();
    list.pop_front();
    list.push_back(flow);
    f.fresh = true;
  }

  void Deactivate(uint32_t flow, Flow& f) {
    auto& list = active_[f.cls];
    for (auto i = list.begin(); i != list.end(); ++i)
      if (*i == flow) {
        list.erase(i);
        break;
      }
    // An idle flow keeps no credit (DRR), but keeps a debt so it cannot dodge an overdraw by pausing.
    if (f.deficit > 0) f.deficit = 0;
    f.fresh = true;
  }

  uint64_t quantum_;
  std::unordered_map<uint32_t, Flow> flows_;
  std::list<uint32_t> active_[kClasses];
  std::unordered_map<uint64_t, uint32_t> where_;
  size_t ready_items_ = 0;
};

}  // namespace smesh::hbone::qos
