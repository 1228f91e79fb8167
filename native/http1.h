// Native HTTP/1.1 engine (strict parsing, per-request decisions from JavaScript, pooled upstreams, on worker threads):
// registration of its N-API surface.
#pragma once

#include <napi.h>

namespace smesh {

// Adds the http1* functions to `exports` (typed in agent/native/http1.ts, contract in agent/native/http1-types.ts).
void RegisterHttp1(Napi::Env env, Napi::Object exports);

}  // namespace smesh
