// Native plaintext relay: splice(2) socket → pipe → socket on epoll worker threads, completion reported to JS.
#pragma once

#include <napi.h>

namespace smesh {

// Adds spliceStart(), spliceAbort(), spliceCounters(), spliceActive() and spliceConfigure() to `exports`
// (typed in agent/native/raw.ts, facade in agent/native/splice.ts).
void RegisterSplice(Napi::Env env, Napi::Object exports);

}  // namespace smesh
