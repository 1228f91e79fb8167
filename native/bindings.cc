// Node-API glue: argument checking (TypeError at once), AsyncWorkers for blocking work, and the
// RawDatapath wrapper around a loaded Datapath. Execute() never touches JavaScript values.
#include "bindings.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <linux/bpf.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>

#include "errors.h"
#include "loader.h"
#include "maps.h"
#include "sockets.h"

namespace smesh {

namespace {

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

Napi::Error ToJsError(Napi::Env env, const std::exception& e) {
  Napi::Error error = Napi::Error::New(env, e.what());
  if (const auto* native = dynamic_cast<const NativeError*>(&e)) {
    const std::string code = native->code();
    if (!code.empty()) error.Set("code", Napi::String::New(env, code));
    if (native->err() > 0) error.Set("errno", Napi::Number::New(env, native->err()));
  }
  return error;
}

// Rethrows a native failure as a JavaScript Error with code/errno.
template <typename Fn>
auto Guard(Napi::Env env, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw ToJsError(env, e);
  }
}

std::string StringField(Napi::Object obj, const char* name) {
  Napi::Value v = obj.Get(name);
  if (!v.IsString() || v.As<Napi::String>().Utf8Value().empty()) ThrowTypeError(obj.Env(), std::string("options.") + name + " must be a non-empty string");
  return v.As<Napi::String>().Utf8Value();
}

void CopyBytes(Napi::Value v, const std::string& what, uint8_t* out, size_t n) {
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != n) ThrowTypeError(v.Env(), what + " must be a Buffer of " + std::to_string(n) + " bytes");
  std::memcpy(out, v.As<Napi::Buffer<uint8_t>>().Data(), n);
}

uint16_t PortArg(Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) ThrowTypeError(v.Env(), what + " must be an integer 0..65535");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 65535) || d != static_cast<double>(static_cast<uint32_t>(d))) ThrowTypeError(v.Env(), what + " must be an integer 0..65535");
  return static_cast<uint16_t>(d);
}

uint32_t U32Arg(Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) ThrowTypeError(v.Env(), what + " must be an integer 0..4294967295");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d))) ThrowTypeError(v.Env(), what + " must be an integer 0..4294967295");
  return static_cast<uint32_t>(d);
}

uint64_t CookieArg(Napi::Value v, const std::string& what) {
  if (!v.IsBigInt()) ThrowTypeError(v.Env(), what + " must be a bigint");
  bool lossless = false;
  uint64_t value = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowTypeError(v.Env(), what + " must be a bigint in 0..2^64-1");
  return value;
}

Napi::Buffer<uint8_t> AddrBuffer(Napi::Env env, const void* addr) { return Napi::Buffer<uint8_t>::Copy(env, static_cast<const uint8_t*>(addr), 16); }

class RawDatapath : public Napi::ObjectWrap<RawDatapath> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RawDatapath",
                       {
                           InstanceMethod("attachInfo", &RawDatapath::AttachInfo),
                           InstanceMethod("podUpdate", &RawDatapath::PodUpdate),
                           InstanceMethod("podDelete", &RawDatapath::PodDeleteJs),
                           InstanceMethod("pods", &RawDatapath::Pods),
                           InstanceMethod("destUpdate", &RawDatapath::DestUpdate),
                           InstanceMethod("destDelete", &RawDatapath::DestDeleteJs),
                           InstanceMethod("dests", &RawDatapath::Dests),
                           InstanceMethod("destUpdateBatch", &RawDatapath::DestUpdateBatch),
                           InstanceMethod("destDeleteBatch", &RawDatapath::DestDeleteBatch),
                           InstanceMethod("denyUpdate", &RawDatapath::DenyUpdate),
                           InstanceMethod("denyDelete", &RawDatapath::DenyDeleteJs),
                           InstanceMethod("denies", &RawDatapath::Denies),
                           InstanceMethod("strictUpdate", &RawDatapath::StrictUpdate),
                           InstanceMethod("strictDelete", &RawDatapath::StrictDeleteJs),
                           InstanceMethod("stricts", &RawDatapath::Stricts),
                           InstanceMethod("strictCounters", &RawDatapath::StrictCountersJs),
                           InstanceMethod("connsPinPath", &RawDatapath::ConnsPinPath),
                           InstanceMethod("attachNetnsLookup", &RawDatapath::AttachNetnsLookupJs),
                           InstanceMethod("inpodListenerUpdate", &RawDatapath::InpodListenerUpdate),
                           InstanceMethod("captureListenerUpdate", &RawDatapath::CaptureListenerUpdate),
                           InstanceMethod("inpodListenerDelete", &RawDatapath::InpodListenerDeleteJs),
                           InstanceMethod("inpodListeners", &RawDatapath::InpodListeners),
                           InstanceMethod("inpodCounters", &RawDatapath::InpodCountersJs),
                           InstanceMethod("skLookupTestRun", &RawDatapath::SkLookupTestRun),
                           InstanceMethod("inpodPodUpdate", &RawDatapath::InpodPodUpdate),
                           InstanceMethod("inpodPodDelete", &RawDatapath::InpodPodDeleteJs),
                           InstanceMethod("inpodPods", &RawDatapath::InpodPods),
                           InstanceMethod("denyStats", &RawDatapath::DenyStatsJs),
                           InstanceMethod("strictDropStats", &RawDatapath::StrictDropStatsJs),
                           InstanceMethod("bandwidthUpdate", &RawDatapath::BandwidthUpdate),
                           InstanceMethod("bandwidthDelete", &RawDatapath::BandwidthDeleteJs),
                           InstanceMethod("bandwidths", &RawDatapath::Bandwidths),
                           InstanceMethod("attachBandwidth", &RawDatapath::AttachBandwidthJs),
                           InstanceMethod("close", &RawDatapath::CloseJs),
                           InstanceMethod("destroy", &RawDatapath::DestroyJs),
                       });
  }

  explicit RawDatapath(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RawDatapath>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) ThrowTypeError(info.Env(), "RawDatapath is created by open(), not with new");
    dp_.reset(info[0].As<Napi::External<Datapath>>().Data());
  }

 private:
  Datapath& Live(Napi::Env env) {
    if (!dp_ || dp_->closed()) throw Napi::Error::New(env, "datapath is closed");
    return *dp_;
  }

  Napi::Value AttachInfo(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!dp_) throw Napi::Error::New(env, "datapath is closed");
    const AttachResult& r = dp_->attach_result();
    Napi::Object out = Napi::Object::New(env);
    out.Set("reused", Napi::Boolean::New(env, r.reused));
    Napi::Array links = Napi::Array::New(env, r.links.size());
    for (size_t i = 0; i < r.links.size(); i++) links.Set(i, Napi::String::New(env, r.links[i]));
    out.Set("links", links);
    return out;
  }

  Napi::Value PodUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t cookie = CookieArg(info[0], "netnsCookie");
    uint32_t workload = U32Arg(info[1], "workloadId");
    Guard(env, [&] { PodPut(Live(env).pods_fd(), cookie, workload); });
    return env.Undefined();
  }

  Napi::Value PodDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint64_t cookie = CookieArg(info[0], "netnsCookie");
    return Napi::Boolean::New(env, Guard(env, [&] { return PodDelete(Live(env).pods_fd(), cookie); }));
  }

  Napi::Value Pods(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto pods = Guard(env, [&] { return PodList(Live(env).pods_fd()); });
    Napi::Array out = Napi::Array::New(env, pods.size());
    for (size_t i = 0; i < pods.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("cookie", Napi::BigInt::New(env, pods[i].first));
      o.Set("workloadId", Napi::Number::New(env, pods[i].second.workload_id));
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value DestUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    Guard(env, [&] { DestPut(Live(env).dests_fd(), MakeAddrPort(addr, port)); });
    return env.Undefined();
  }

  Napi::Value DestDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    return Napi::Boolean::New(env, Guard(env, [&] { return DestDelete(Live(env).dests_fd(), MakeAddrPort(addr, port)); }));
  }

  // destUpdateBatch(keys: Buffer) / destDeleteBatch(keys) → deleted count: keys packed as struct
  // smesh_addr_port (16-byte address, host-order u16 port, u16 pad = 0), many per syscall.
  static std::vector<smesh_addr_port> KeysArg(Napi::Value v) {
    constexpr size_t kSize = sizeof(smesh_addr_port);
    if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() % kSize != 0)
      ThrowTypeError(v.Env(), "keys must be a Buffer of packed " + std::to_string(kSize) + "-byte smesh_addr_port entries");
    auto buf = v.As<Napi::Buffer<uint8_t>>();
    std::vector<smesh_addr_port> keys(buf.Length() / kSize);
    if (!keys.empty()) std::memcpy(keys.data(), buf.Data(), buf.Length());
    for (size_t i = 0; i < keys.size(); i++)
      if (keys[i].pad != 0) ThrowTypeError(v.Env(), "keys[" + std::to_string(i) + "].pad must be 0");
    return keys;
  }

  Napi::Value DestUpdateBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto keys = KeysArg(info[0]);
    if (!keys.empty()) Guard(env, [&] { DestPutBatch(Live(env).dests_fd(), keys.data(), static_cast<uint32_t>(keys.size())); });
    return env.Undefined();
  }

  Napi::Value DestDeleteBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto keys = KeysArg(info[0]);
    if (keys.empty()) return Napi::Number::New(env, 0);
    return Napi::Number::New(env, Guard(env, [&] { return smesh::DestDeleteBatch(Live(env).dests_fd(), keys.data(), static_cast<uint32_t>(keys.size())); }));
  }

  Napi::Value Dests(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto dests = Guard(env, [&] { return DestList(Live(env).dests_fd()); });
    Napi::Array out = Napi::Array::New(env, dests.size());
    for (size_t i = 0; i < dests.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("addr", AddrBuffer(env, dests[i].addr));
      o.Set("port", Napi::Number::New(env, dests[i].port));
      out.Set(i, o);
    }
    return out;
  }

  // denyUpdate(workloadId, addr: Buffer(16), port)
  Napi::Value DenyUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t workload = U32Arg(info[0], "workloadId");
    uint8_t addr[16];
    CopyBytes(info[1], "addr", addr, 16);
    uint16_t port = PortArg(info[2], "port");
    Guard(env, [&] { DenyPut(Live(env).deny_fd(), MakeDenyKey(workload, addr, port)); });
    return env.Undefined();
  }

  Napi::Value DenyDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t workload = U32Arg(info[0], "workloadId");
    uint8_t addr[16];
    CopyBytes(info[1], "addr", addr, 16);
    uint16_t port = PortArg(info[2], "port");
    return Napi::Boolean::New(env, Guard(env, [&] { return DenyDelete(Live(env).deny_fd(), MakeDenyKey(workload, addr, port)); }));
  }

  Napi::Value Denies(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto keys = Guard(env, [&] { return DenyList(Live(env).deny_fd()); });
    Napi::Array out = Napi::Array::New(env, keys.size());
    for (size_t i = 0; i < keys.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("workloadId", Napi::Number::New(env, keys[i].workload_id));
      o.Set("addr", AddrBuffer(env, keys[i].addr));
      o.Set("port", Napi::Number::New(env, keys[i].port));
      out.Set(i, o);
    }
    return out;
  }

  // strictUpdate(addr: Buffer(16), port, mode: 1 STRICT | 2 PERMISSIVE | 3 TRUSTED_SOURCE (port 0 only))
  Napi::Value StrictUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    uint32_t mode = U32Arg(info[2], "mode");
    if (mode != SMESH_INBOUND_STRICT && mode != SMESH_INBOUND_PERMISSIVE && mode != SMESH_INBOUND_TRUSTED_SOURCE)
      ThrowTypeError(env, "mode must be 1 (STRICT), 2 (PERMISSIVE) or 3 (TRUSTED_SOURCE)");
    if (mode == SMESH_INBOUND_TRUSTED_SOURCE && port != 0) ThrowTypeError(env, "a TRUSTED_SOURCE entry must have port 0");
    Guard(env, [&] { StrictPut(Live(env).strict_fd(), MakeAddrPort(addr, port), mode); });
    return env.Undefined();
  }

  Napi::Value StrictDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    return Napi::Boolean::New(env, Guard(env, [&] { return StrictDelete(Live(env).strict_fd(), MakeAddrPort(addr, port)); }));
  }

  Napi::Value Stricts(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto entries = Guard(env, [&] { return StrictList(Live(env).strict_fd()); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("addr", AddrBuffer(env, entries[i].first.addr));
      o.Set("port", Napi::Number::New(env, entries[i].first.port));
      o.Set("mode", Napi::Number::New(env, entries[i].second.mode));
      out.Set(i, o);
    }
    return out;
  }

  // strictCounters() → {dropped, plaintext} (numbers; exact below 2^53)
  Napi::Value StrictCountersJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    smesh_strict_counters c = Guard(env, [&] { return StrictCounters(Live(env).strict_stats_fd()); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("dropped", Napi::Number::New(env, static_cast<double>(c.dropped)));
    o.Set("plaintext", Napi::Number::New(env, static_cast<double>(c.plaintext)));
    return o;
  }

  // bandwidthUpdate(addr, direction 1 egress | 2 ingress, bytesPerSec)
  Napi::Value BandwidthUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    const uint32_t direction = U32Arg(info[1], "direction");
    if (!info[2].IsNumber() || !(info[2].As<Napi::Number>().DoubleValue() >= 1) || info[2].As<Napi::Number>().DoubleValue() > 9.0e15)
      ThrowTypeError(env, "bytesPerSec must be a number in 1..9e15");
    const uint64_t rate = static_cast<uint64_t>(info[2].As<Napi::Number>().DoubleValue());
    Guard(env, [&] { BandwidthPut(Live(env).bandwidth_fd(), MakeBandwidthKey(addr, direction), rate); });
    return env.Undefined();
  }
  Napi::Value BandwidthDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    const uint32_t direction = U32Arg(info[1], "direction");
    return Napi::Boolean::New(env, Guard(env, [&] { return BandwidthDelete(Live(env).bandwidth_fd(), MakeBandwidthKey(addr, direction)); }));
  }
  // bandwidths() → [{ addr, direction, bytesPerSec, dropped }]
  Napi::Value Bandwidths(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto entries = Guard(env, [&] { return BandwidthList(Live(env).bandwidth_fd()); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("addr", AddrBuffer(env, entries[i].first.addr));
      o.Set("direction", Napi::Number::New(env, entries[i].first.direction));
      o.Set("bytesPerSec", Napi::Number::New(env, static_cast<double>(entries[i].second.bytes_per_sec)));
      o.Set("dropped", Napi::Number::New(env, static_cast<double>(entries[i].second.dropped)));
      out.Set(i, o);
    }
    return out;
  }
  // attachBandwidth(direction, netnsPath ('' = the agent's namespace), ifindex, bytesPerSec) → 'edt' (fq + the
  // direction's pacing program) | 'tbf' (no sch_fq in this kernel: a token bucket qdisc at that rate)
  Napi::Value AttachBandwidthJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint32_t direction = U32Arg(info[0], "direction");
    if (info.Length() < 4 || !info[1].IsString())
      ThrowTypeError(env, "attachBandwidth(direction, netnsPath, ifindex, bytesPerSec): netnsPath must be a string");
    const std::string path = info[1].As<Napi::String>().Utf8Value();
    const uint32_t ifindex = U32Arg(info[2], "ifindex");
    if (ifindex == 0) ThrowTypeError(env, "ifindex must be a positive integer");
    if (!info[3].IsNumber() || !(info[3].As<Napi::Number>().DoubleValue() >= 1) || info[3].As<Napi::Number>().DoubleValue() > 9.0e15)
      ThrowTypeError(env, "bytesPerSec must be a number in 1..9e15");
    const uint64_t rate = static_cast<uint64_t>(info[3].As<Napi::Number>().DoubleValue());
    std::string mode = Guard(env, [&] { return AttachBandwidthPacing(Live(env).bandwidth_prog_fd(direction), path, static_cast<int>(ifindex), rate); });
    return Napi::String::New(env, mode);
  }

  // attachNetnsLookup(netnsPath, pinPath) → link fd of the pinned sk_lookup link (unpin and close to detach)
  Napi::Value AttachNetnsLookupJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty() || !info[1].IsString() ||
        info[1].As<Napi::String>().Utf8Value().empty())
      ThrowTypeError(env, "attachNetnsLookup(netnsPath, pinPath) needs two non-empty path strings");
    const std::string path = info[0].As<Napi::String>().Utf8Value();
    const std::string pin = info[1].As<Napi::String>().Utf8Value();
    int fd = Guard(env, [&] { return AttachNetnsLookup(Live(env).inpod_lookup_prog_fd(), path, pin); });
    return Napi::Number::New(env, fd);
  }

  // inpodListenerUpdate(addr: Buffer(16), port, listenerFd)
  Napi::Value InpodListenerUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    uint32_t fd = U32Arg(info[2], "listenerFd");
    if (fd > 2147483647u) ThrowTypeError(env, "listenerFd must be a file descriptor");
    Guard(env, [&] { InpodListenerPut(Live(env).inpod_listeners_fd(), MakeAddrPort(addr, port), static_cast<int>(fd)); });
    return env.Undefined();
  }

  // captureListenerUpdate(listenerFd): the outbound listener that the capture-tuple steering (sk_lookup) hands to
  Napi::Value CaptureListenerUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t fd = U32Arg(info[0], "listenerFd");
    if (fd > 2147483647u) ThrowTypeError(env, "listenerFd must be a file descriptor");
    Guard(env, [&] { CaptureListenerPut(Live(env).capture_listener_fd(), static_cast<int>(fd)); });
    return env.Undefined();
  }

  Napi::Value InpodListenerDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    uint16_t port = PortArg(info[1], "port");
    return Napi::Boolean::New(env, Guard(env, [&] { return InpodListenerDelete(Live(env).inpod_listeners_fd(), MakeAddrPort(addr, port)); }));
  }

  Napi::Value InpodListeners(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto keys = Guard(env, [&] { return InpodListenerKeys(Live(env).inpod_listeners_fd()); });
    Napi::Array out = Napi::Array::New(env, keys.size());
    for (size_t i = 0; i < keys.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("addr", AddrBuffer(env, keys[i].addr));
      o.Set("port", Napi::Number::New(env, keys[i].port));
      out.Set(i, o);
    }
    return out;
  }

  // denyStats() → [{workloadId, addr: Buffer(16), port, count}] (refused connect() calls per deny entry)
  Napi::Value DenyStatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto entries = Guard(env, [&] { return DenyStats(Live(env).deny_stats_fd()); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("workloadId", Napi::Number::New(env, entries[i].first.workload_id));
      o.Set("addr", AddrBuffer(env, entries[i].first.addr));
      o.Set("port", Napi::Number::New(env, entries[i].first.port));
      o.Set("count", Napi::Number::New(env, static_cast<double>(entries[i].second)));
      out.Set(i, o);
    }
    return out;
  }

  // strictDropStats() → [{src: Buffer(16), dst: Buffer(16), port, count}] (STRICT-dropped connections)
  Napi::Value StrictDropStatsJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto entries = Guard(env, [&] { return StrictDropStats(Live(env).strict_drop_stats_fd()); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (size_t i = 0; i < entries.size(); i++) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("src", AddrBuffer(env, entries[i].first.src));
      o.Set("dst", AddrBuffer(env, entries[i].first.dst));
      o.Set("port", Napi::Number::New(env, entries[i].first.dport));
      o.Set("count", Napi::Number::New(env, static_cast<double>(entries[i].second)));
      out.Set(i, o);
    }
    return out;
  }

  // inpodPodUpdate(addr: Buffer(16)): plaintext to this pod is captured (held back while no listener is registered)
  Napi::Value InpodPodUpdate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    Guard(env, [&] { InpodPodPut(Live(env).inpod_pods_fd(), MakeAddrPort(addr, 0)); });
    return env.Undefined();
  }

  Napi::Value InpodPodDeleteJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t addr[16];
    CopyBytes(info[0], "addr", addr, 16);
    return Napi::Boolean::New(env, Guard(env, [&] { return InpodPodDelete(Live(env).inpod_pods_fd(), MakeAddrPort(addr, 0)); }));
  }

  Napi::Value InpodPods(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto keys = Guard(env, [&] { return InpodPodList(Live(env).inpod_pods_fd()); });
    Napi::Array out = Napi::Array::New(env, keys.size());
    for (size_t i = 0; i < keys.size(); i++) out.Set(i, AddrBuffer(env, keys[i].addr));
    return out;
  }

  // inpodCounters() → {captured, noListener, assignFailed}
  Napi::Value InpodCountersJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    smesh_inpod_counters c = Guard(env, [&] { return InpodCounters(Live(env).inpod_stats_fd()); });
    Napi::Object o = Napi::Object::New(env);
    o.Set("captured", Napi::Number::New(env, static_cast<double>(c.captured)));
    o.Set("noListener", Napi::Number::New(env, static_cast<double>(c.no_listener)));
    o.Set("assignFailed", Napi::Number::New(env, static_cast<double>(c.assign_failed)));
    return o;
  }

  // skLookupTestRun(program, family 4|6, protocol, remoteAddr (16-byte key), remotePort, localAddr (16-byte key),
  // localPort) → { verdict: 'pass' | 'drop', cookie: bigint (the socket the program assigned, 0n = none) }:
  // BPF_PROG_TEST_RUN of an sk_lookup program with a context built here from the uapi struct bpf_sk_lookup.
  Napi::Value SkLookupTestRun(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 7 || !info[0].IsString() || !info[3].IsBuffer() || !info[5].IsBuffer())
      throw Napi::TypeError::New(env, "skLookupTestRun(program, family, protocol, remoteAddr, remotePort, localAddr, localPort)");
    const std::string program = info[0].As<Napi::String>();
    const int family = info[1].As<Napi::Number>().Int32Value();
    auto remote = info[3].As<Napi::Buffer<uint8_t>>();
    auto local = info[5].As<Napi::Buffer<uint8_t>>();
    if (remote.Length() != 16 || local.Length() != 16) throw Napi::TypeError::New(env, "addresses must be 16-byte map keys");
    struct bpf_sk_lookup ctx;
    std::memset(&ctx, 0, sizeof(ctx));
    ctx.family = family == 6 ? AF_INET6 : AF_INET;
    ctx.protocol = info[2].As<Napi::Number>().Uint32Value();
    ctx.remote_port = htons(static_cast<uint16_t>(info[4].As<Napi::Number>().Uint32Value()));
    ctx.local_port = info[6].As<Napi::Number>().Uint32Value();
    if (family == 6) {
      std::memcpy(ctx.remote_ip6, remote.Data(), 16);
      std::memcpy(ctx.local_ip6, local.Data(), 16);
    } else {
      std::memcpy(&ctx.remote_ip4, remote.Data() + 12, 4);
      std::memcpy(&ctx.local_ip4, local.Data() + 12, 4);
    }
    const int fd = Guard(env, [&] { return Live(env).program_fd(program); });
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_out = &ctx, .ctx_size_in = sizeof(ctx), .ctx_size_out = sizeof(ctx));
    if (bpf_prog_test_run_opts(fd, &opts) != 0) {
      const int err = errno;
      throw Napi::Error::New(env, std::string("BPF_PROG_TEST_RUN ") + program + ": " + std::strerror(err));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("verdict", Napi::String::New(env, opts.retval == SK_PASS ? "pass" : "drop"));
    out.Set("cookie", Napi::BigInt::New(env, static_cast<uint64_t>(ctx.cookie)));
    return out;
  }

  Napi::Value ConnsPinPath(const Napi::CallbackInfo& info) {
    if (!dp_) throw Napi::Error::New(info.Env(), "datapath is closed");
    return Napi::String::New(info.Env(), dp_->conns_pin_path());
  }

  Napi::Value CloseJs(const Napi::CallbackInfo& info) {
    if (dp_) dp_->Close();
    return info.Env().Undefined();
  }

  Napi::Value DestroyJs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!dp_) throw Napi::Error::New(env, "datapath is already destroyed");
    Guard(env, [&] { dp_->Destroy(); });
    return env.Undefined();
  }

  std::unique_ptr<Datapath> dp_;
};

Napi::FunctionReference* RawDatapath::constructor = nullptr;

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, LoaderOptions options)
      : Napi::AsyncWorker(env, "smesh.open"), deferred_(Napi::Promise::Deferred::New(env)), options_(std::move(options)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      result_ = Datapath::Open(options_);
    } catch (const std::exception& e) {
      failure_ = std::current_exception();
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::External<Datapath> ext = Napi::External<Datapath>::New(env, result_.release());
    deferred_.Resolve(RawDatapath::constructor->New({ext}));
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(Rejection(Env(), failure_, error)); }

  static Napi::Value Rejection(Napi::Env env, std::exception_ptr failure, const Napi::Error& fallback) {
    try {
      if (failure) std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      return ToJsError(env, e).Value();
    }
    return fallback.Value();
  }

 private:
  Napi::Promise::Deferred deferred_;
  LoaderOptions options_;
  std::unique_ptr<Datapath> result_;
  std::exception_ptr failure_;
};

class NetnsCookieWorker : public Napi::AsyncWorker {
 public:
  NetnsCookieWorker(Napi::Env env, std::string path)
      : Napi::AsyncWorker(env, "smesh.netnsCookie"), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      cookie_ = NetnsCookie(path_);
    } catch (const std::exception& e) {
      failure_ = std::current_exception();
      SetError(e.what());
    }
  }

  void OnOK() override { deferred_.Resolve(Napi::BigInt::New(Env(), cookie_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(OpenWorker::Rejection(Env(), failure_, error)); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  uint64_t cookie_ = 0;
  std::exception_ptr failure_;
};

class NetnsListenerWorker : public Napi::AsyncWorker {
 public:
  NetnsListenerWorker(Napi::Env env, std::string path, int backlog, int family)
      : Napi::AsyncWorker(env, "smesh.netnsListener"),
        deferred_(Napi::Promise::Deferred::New(env)),
        path_(std::move(path)),
        backlog_(backlog),
        family_(family) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      fd_ = NetnsListener(path_, backlog_, family_);
    } catch (const std::exception& e) {
      failure_ = std::current_exception();
      SetError(e.what());
    }
  }

  void OnOK() override { deferred_.Resolve(Napi::Number::New(Env(), fd_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(OpenWorker::Rejection(Env(), failure_, error)); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int backlog_;
  int family_;
  int fd_ = -1;
  std::exception_ptr failure_;
};

// open({bpffsDir, cgroupPath, captureIp4: Buffer(4), capturePort, captureIp6?: Buffer(16),
//       captureSpread?: number, captureNetns?: string,
//       pods?: [{cookie: bigint, workloadId}], dests?: [{addr: Buffer(16), port}]}) → Promise<RawDatapath>
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowTypeError(env, "open(options) needs an options object");
  Napi::Object o = info[0].As<Napi::Object>();
  LoaderOptions options;
  options.bpffs_dir = StringField(o, "bpffsDir");
  options.cgroup_path = StringField(o, "cgroupPath");
  CopyBytes(o.Get("captureIp4"), "options.captureIp4", options.capture_ip4, 4);
  options.capture_port = PortArg(o.Get("capturePort"), "options.capturePort");
  if (options.capture_port == 0) ThrowTypeError(env, "options.capturePort must be an integer 1..65535");
  Napi::Value ip6 = o.Get("captureIp6");
  if (!ip6.IsUndefined() && !ip6.IsNull()) {
    CopyBytes(ip6, "options.captureIp6", options.capture_ip6, 16);
    options.has_capture_ip6 = true;
  }
  Napi::Value spread = o.Get("captureSpread");
  if (!spread.IsUndefined()) options.capture_spread = U32Arg(spread, "options.captureSpread");
  Napi::Value capture_netns = o.Get("captureNetns");
  if (!capture_netns.IsUndefined()) options.capture_netns_path = StringField(o, "captureNetns");
  Napi::Value pods = o.Get("pods");
  if (!pods.IsUndefined()) {
    if (!pods.IsArray()) ThrowTypeError(env, "options.pods must be an array");
    Napi::Array arr = pods.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value item = arr.Get(i);
      if (!item.IsObject()) ThrowTypeError(env, "options.pods[" + std::to_string(i) + "] must be an object");
      Napi::Object p = item.As<Napi::Object>();
      options.pods.emplace_back(CookieArg(p.Get("cookie"), "options.pods[].cookie"), U32Arg(p.Get("workloadId"), "options.pods[].workloadId"));
    }
  }
  Napi::Value dests = o.Get("dests");
  if (!dests.IsUndefined()) {
    if (!dests.IsArray()) ThrowTypeError(env, "options.dests must be an array");
    Napi::Array arr = dests.As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value item = arr.Get(i);
      if (!item.IsObject()) ThrowTypeError(env, "options.dests[" + std::to_string(i) + "] must be an object");
      Napi::Object d = item.As<Napi::Object>();
      uint8_t addr[16];
      CopyBytes(d.Get("addr"), "options.dests[].addr", addr, 16);
      options.dests.push_back(MakeAddrPort(addr, PortArg(d.Get("port"), "options.dests[].port")));
    }
  }
  auto* worker = new OpenWorker(env, std::move(options));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// netnsCookie(path) → Promise<bigint>
Napi::Value NetnsCookieJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    ThrowTypeError(env, "netnsCookie(path) needs a non-empty path string");
  auto* worker = new NetnsCookieWorker(env, info[0].As<Napi::String>().Utf8Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// netnsListener(path, backlog?, family?) → Promise<fd>: a listening TCP socket on 127.0.0.1:0 (family 4, default) or
// [::1]:0 (family 6, IPv6 only) inside that namespace
Napi::Value NetnsListenerJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    ThrowTypeError(env, "netnsListener(path, backlog) needs a non-empty path string");
  int backlog = 511;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    uint32_t b = U32Arg(info[1], "backlog");
    if (b < 1 || b > 65535) ThrowTypeError(env, "backlog must be an integer 1..65535");
    backlog = static_cast<int>(b);
  }
  int family = AF_INET;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    uint32_t f = U32Arg(info[2], "family");
    if (f != 4 && f != 6) ThrowTypeError(env, "family must be 4 or 6");
    family = f == 6 ? AF_INET6 : AF_INET;
  }
  auto* worker = new NetnsListenerWorker(env, info[0].As<Napi::String>().Utf8Value(), backlog, family);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// originalDestination(fd, connsPinPath?) → {addr: Buffer(16), port, via: 'getsockopt'|'map'} | null
Napi::Value OriginalDestinationJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowTypeError(env, "originalDestination(fd) needs a socket fd number");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d < 2147483648.0) || d != static_cast<double>(static_cast<int>(d))) ThrowTypeError(env, "fd must be a non-negative integer");
  std::string pin;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsString()) ThrowTypeError(env, "connsPinPath must be a string");
    pin = info[1].As<Napi::String>().Utf8Value();
  }
  auto result = Guard(env, [&] { return OriginalDestination(static_cast<int>(d), pin); });
  if (!result) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("addr", AddrBuffer(env, result->addr));
  out.Set("port", Napi::Number::New(env, result->port));
  out.Set("via", Napi::String::New(env, result->from_map ? "map" : "getsockopt"));
  return out;
}

// socketCookie(fd) → bigint: SO_COOKIE of a socket (what an sk_lookup program's assignment reports).
Napi::Value SocketCookieJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "socketCookie(fd)");
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(info[0].As<Napi::Number>().Int32Value(), SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0)
    throw Napi::Error::New(env, std::string("getsockopt(SO_COOKIE): ") + std::strerror(errno));
  return Napi::BigInt::New(env, cookie);
}

// podDevices(netnsPath, addr, peerNetnsPath = '') → { ifindex, ifname, peerIfindex, peerIfname } (peer 0/'' when the
// pod's interface has no veth peer in the peer namespace; '' = this process's namespace)
Napi::Value PodDevicesJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    ThrowTypeError(env, "podDevices(netnsPath, addr) needs a non-empty netns path");
  uint8_t addr[16];
  CopyBytes(info[1], "addr", addr, 16);
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const std::string peer_path = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  PodDevices d = Guard(env, [&] { return FindPodDevices(path, addr, peer_path); });
  Napi::Object o = Napi::Object::New(env);
  o.Set("ifindex", Napi::Number::New(env, d.ifindex));
  o.Set("ifname", Napi::String::New(env, d.ifname));
  o.Set("peerIfindex", Napi::Number::New(env, d.peer_ifindex));
  o.Set("peerIfname", Napi::String::New(env, d.peer_ifname));
  return o;
}

// detachBandwidth(netnsPath ('' = the agent's namespace), ifindex): removes the pacing filter and the root fq.
Napi::Value DetachBandwidthJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) ThrowTypeError(env, "detachBandwidth(netnsPath, ifindex): netnsPath must be a string");
  const std::string path = info[0].As<Napi::String>().Utf8Value();
  const uint32_t ifindex = U32Arg(info[1], "ifindex");
  Guard(env, [&] { DetachBandwidthPacing(path, static_cast<int>(ifindex)); });
  return env.Undefined();
}

// abiLayout() → { struct name: { size, members: { name: byte offset } } } as this compiler lays out bpf/shared/abi.h;
// test/native/abi-layout.test.ts compares it with the BPF object's BTF and with the TypeScript packers' layouts.
Napi::Value AbiLayoutJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  auto add = [&](const char* name, size_t size, std::initializer_list<std::pair<const char*, size_t>> members) {
    Napi::Object s = Napi::Object::New(env);
    s.Set("size", Napi::Number::New(env, static_cast<double>(size)));
    Napi::Object m = Napi::Object::New(env);
    for (const auto& [member, offset] : members) m.Set(member, Napi::Number::New(env, static_cast<double>(offset)));
    s.Set("members", m);
    out.Set(name, s);
  };
#define SMESH_M(st, f) {#f, offsetof(struct st, f)}
  add("smesh_pod_info", sizeof(struct smesh_pod_info), {SMESH_M(smesh_pod_info, workload_id), SMESH_M(smesh_pod_info, flags)});
  add("smesh_addr_port", sizeof(struct smesh_addr_port), {SMESH_M(smesh_addr_port, addr), SMESH_M(smesh_addr_port, port), SMESH_M(smesh_addr_port, pad)});
  add("smesh_dest_info", sizeof(struct smesh_dest_info), {SMESH_M(smesh_dest_info, flags)});
  add("smesh_orig_dst", sizeof(struct smesh_orig_dst),
      {SMESH_M(smesh_orig_dst, addr), SMESH_M(smesh_orig_dst, port), SMESH_M(smesh_orig_dst, pad), SMESH_M(smesh_orig_dst, workload_id),
       SMESH_M(smesh_orig_dst, pad2)});
  add("smesh_deny_key", sizeof(struct smesh_deny_key),
      {SMESH_M(smesh_deny_key, workload_id), SMESH_M(smesh_deny_key, addr), SMESH_M(smesh_deny_key, port), SMESH_M(smesh_deny_key, pad)});
  add("smesh_strict_info", sizeof(struct smesh_strict_info), {SMESH_M(smesh_strict_info, mode)});
  add("smesh_strict_counters", sizeof(struct smesh_strict_counters), {SMESH_M(smesh_strict_counters, dropped), SMESH_M(smesh_strict_counters, plaintext)});
  add("smesh_inpod_counters", sizeof(struct smesh_inpod_counters),
      {SMESH_M(smesh_inpod_counters, captured), SMESH_M(smesh_inpod_counters, no_listener), SMESH_M(smesh_inpod_counters, assign_failed),
       SMESH_M(smesh_inpod_counters, reserved)});
  add("smesh_flow_key", sizeof(struct smesh_flow_key),
      {SMESH_M(smesh_flow_key, src), SMESH_M(smesh_flow_key, dst), SMESH_M(smesh_flow_key, sport), SMESH_M(smesh_flow_key, dport)});
  add("smesh_strict_flow_seen", sizeof(struct smesh_strict_flow_seen), {SMESH_M(smesh_strict_flow_seen, first_ns)});
  add("smesh_strict_drop_key", sizeof(struct smesh_strict_drop_key),
      {SMESH_M(smesh_strict_drop_key, src), SMESH_M(smesh_strict_drop_key, dst), SMESH_M(smesh_strict_drop_key, dport), SMESH_M(smesh_strict_drop_key, pad)});
  add("smesh_bw_key", sizeof(struct smesh_bw_key), {SMESH_M(smesh_bw_key, addr), SMESH_M(smesh_bw_key, direction)});
  add("smesh_bw_info", sizeof(struct smesh_bw_info),
      {SMESH_M(smesh_bw_info, bytes_per_sec), SMESH_M(smesh_bw_info, t_last), SMESH_M(smesh_bw_info, dropped), SMESH_M(smesh_bw_info, reserved)});
#undef SMESH_M
  return out;
}

// mallocTrim() → boolean: glibc malloc_trim(0) — the free pages of every malloc arena (the engines' worker threads
// allocate their buffers in arenas of their own) go back to the OS; true when something was released. The agent calls
// it once a load burst is over (agent/runtime/reclaim.ts). Other C libraries: false, nothing done.
Napi::Value MallocTrimJs(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

// reusePortSocket(host, port, backlog) → fd: a TCP socket with SO_REUSEADDR + SO_REUSEPORT bound to host:port,
// listening when backlog > 0 (0: bound only). Synchronous (no namespace switch, nothing that blocks). The caller owns
// the fd: `server.listen({ fd })`, or pass it on (smesh supervise → LISTEN_FDS).
Napi::Value ReusePortSocketJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    ThrowTypeError(env, "reusePortSocket(host, port, backlog) needs a non-empty host string");
  uint16_t port = PortArg(info[1], "port");
  int backlog = 0;
  if (info.Length() > 2 && !info[2].IsUndefined()) {
    uint32_t b = U32Arg(info[2], "backlog");
    if (b > 65535) ThrowTypeError(env, "backlog must be an integer 0..65535");
    backlog = static_cast<int>(b);
  }
  int fd = -1;
  Guard(env, [&] { fd = ReusePortSocket(info[0].As<Napi::String>().Utf8Value(), port, backlog); });
  return Napi::Number::New(env, fd);
}

}  // namespace

void RegisterBindings(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = RawDatapath::Define(env);
  RawDatapath::constructor = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.SetInstanceData(RawDatapath::constructor);
  exports.Set("RawDatapath", ctor);
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookieJs, "netnsCookie"));
  exports.Set("netnsListener", Napi::Function::New(env, NetnsListenerJs, "netnsListener"));
  exports.Set("originalDestination", Napi::Function::New(env, OriginalDestinationJs, "originalDestination"));
  exports.Set("abiLayout", Napi::Function::New(env, AbiLayoutJs, "abiLayout"));
  exports.Set("socketCookie", Napi::Function::New(env, SocketCookieJs, "socketCookie"));
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrimJs, "mallocTrim"));
  exports.Set("podDevices", Napi::Function::New(env, PodDevicesJs, "podDevices"));
  exports.Set("detachBandwidth", Napi::Function::New(env, DetachBandwidthJs, "detachBandwidth"));
  exports.Set("reusePortSocket", Napi::Function::New(env, ReusePortSocketJs, "reusePortSocket"));
}

}  // namespace smesh
