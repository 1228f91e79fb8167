// JavaScript bindings: the raw surface typed in agent/native/raw.ts.
#pragma once

#include <napi.h>

namespace smesh {

// Adds open(), netnsCookie(), originalDestination() and the RawDatapath class to `exports`.
void RegisterBindings(Napi::Env env, Napi::Object exports);

}  // namespace smesh
