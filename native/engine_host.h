// What every native engine shares with JavaScript: its worker threads (new work handed out round robin) and one
// ThreadSafeFunction that carries the workers' events to the JS thread in batches (EventBatch). The HBONE and the
// HTTP/1.1 engines are this host around their own Engine interface, Worker and Event.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "event_batch.h"

namespace smesh {

// `Impl` (CRTP) provides:
//   static Impl* Current();                                   the process's running engine (nullptr after teardown)
//   static Napi::Object ToJs(Napi::Env, const EventT&);       one event as JavaScript sees it
//   static void Release(EventT&);                             frees what an undelivered event owns (e.g. an fd)
// `Base` is the engine interface the workers call (with a virtual Emit(EventT&&)); its constructor takes `base_args`.
template <typename Impl, typename Base, typename WorkerT, typename EventT>
class EngineHost : public Base {
 public:
  template <typename... BaseArgs>
  EngineHost(Napi::Env env, const char* resource, int workers, Napi::Function callback, BaseArgs&&... base_args)
      : Base(std::forward<BaseArgs>(base_args)...), env_(env) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, callback, resource, 0, 1);
    tsfn_.Unref(env);
    for (int i = 0; i < workers; i++) workers_.push_back(std::make_unique<WorkerT>(this, i));
    for (auto& w : workers_) w->Start();
  }

  napi_env env() const { return env_; }
  WorkerT& worker(int i) { return *workers_[static_cast<size_t>(i)]; }
  int NextWorker() { return static_cast<int>(rr_++ % workers_.size()); }
  const std::vector<std::unique_ptr<WorkerT>>& workers() const { return workers_; }

  // Keeps the Node event loop alive (ref) only while JavaScript waits for an event.
  void SetRef(bool ref) {
    if (ref == reffed_) return;
    reffed_ = ref;
    if (ref)
      tsfn_.Ref(Napi::Env(env_));
    else
      tsfn_.Unref(Napi::Env(env_));
  }

  // Any worker thread: queues the event; the first of a batch wakes the JS thread.
  void Emit(EventT&& ev) override {
    if (!events_.Push(std::move(ev))) return;
    tsfn_.NonBlockingCall([](Napi::Env env, Napi::Function fn) {
      Impl* e = Impl::Current();
      if (e == nullptr || env == nullptr) return;
      e->events_.Deliver(env, fn, Impl::ToJs);
    });
  }

  // JS thread: stops the workers (they free their connections without reporting), then drops what is undelivered.
  void Shutdown() {
    for (auto& w : workers_) w->Stop();
    workers_.clear();
    tsfn_.Release();
    events_.Discard(Impl::Release);
  }

 private:
  napi_env env_;
  Napi::ThreadSafeFunction tsfn_;
  std::vector<std::unique_ptr<WorkerT>> workers_;
  uint64_t rr_ = 0;
  bool reffed_ = false;
  EventBatch<EventT> events_;
};

}  // namespace smesh
