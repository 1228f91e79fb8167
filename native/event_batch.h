// A native engine's events on their way to JavaScript: worker threads queue them, the first of a batch tells the caller to wake the JS thread, which turns the
// whole batch into one array for one callback.
#pragma once

#include <napi.h>

#include <mutex>
#include <utility>
#include <vector>

namespace smesh {

template <typename Event>
class EventBatch {
 public:
  // Any thread. True when the queue was empty: the caller wakes the JS thread (one ThreadSafeFunction call per batch).
  bool Push(Event&& ev) {
    std::lock_guard<std::mutex> lock(mu_);
    const bool first = events_.empty();
    events_.push_back(std::move(ev));
    return first;
  }

  // JS thread: everything queued so far as one array, converted by `to_js`, passed to `fn`. A throwing callback must
  // not take the addon down (the facades' handlers do not throw).
  template <typename ToJs>
  void Deliver(Napi::Env env, Napi::Function fn, ToJs to_js) {
    std::vector<Event> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(events_);
    }
    if (batch.empty()) return;
    Napi::HandleScope scope(env);
    Napi::Array arr = Napi::Array::New(env, batch.size());
    for (size_t i = 0; i < batch.size(); i++) arr.Set(static_cast<uint32_t>(i), to_js(env, batch[i]));
    try {
      fn.Call({arr});
    } catch (const Napi::Error&) {
    }
  }

  // Teardown: drops what nobody will deliver, after `release` frees what an event owns (e.g. an fd).
  template <typename Release>
  void Discard(Release release) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& ev : events_) release(ev);
    events_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
};

}  // namespace smesh
