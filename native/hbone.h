// Native HBONE engine (TLS 1.3 + HTTP/2 CONNECT on worker threads): registration of its N-API surface.
#pragma once

#include <napi.h>

namespace smesh {

// Adds the hbone* functions to `exports` (typed in agent/native/hbone.ts, contract in agent/native/hbone-types.ts).
void RegisterHbone(Napi::Env env, Napi::Object exports);

}  // namespace smesh
