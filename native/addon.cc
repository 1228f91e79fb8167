// smesh_native addon entry point: registers the bindings, nothing else.
#include <napi.h>

#include "bindings.h"
#include "hbone.h"
#include "http1.h"
#include "splice.h"

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  smesh::RegisterBindings(env, exports);
  smesh::RegisterSplice(env, exports);
  smesh::RegisterHbone(env, exports);
  smesh::RegisterHttp1(env, exports);
  return exports;
}

NODE_API_MODULE(smesh_native, Init)
