// NativeError helpers: consistent "what was attempted: errno text" messages.
#include "errors.h"

#include <string.h>

namespace smesh {

std::string NativeError::code() const {
  if (err_ <= 0) return "";
  const char* name = strerrorname_np(err_);
  return name ? name : "";
}

void ThrowErrno(const std::string& what, int err) {
  if (err < 0) err = -err;
  throw NativeError(what + ": " + strerror(err), err);
}

void ThrowMessage(const std::string& what) { throw NativeError(what, 0); }

}  // namespace smesh
