// Native error type: every failure says what was attempted and the errno text, and keeps the errno name for JS.
#pragma once

#include <stdexcept>
#include <string>

namespace smesh {

class NativeError : public std::runtime_error {
 public:
  NativeError(const std::string& message, int err) : std::runtime_error(message), err_(err) {}
  int err() const { return err_; }
  // "ENOENT", "EPERM", ... or "" when there is no errno.
  std::string code() const;

 private:
  int err_;
};

// Throws NativeError("<what>: <strerror(err)>", err). `err` is a positive errno value.
[[noreturn]] void ThrowErrno(const std::string& what, int err);
// Throws NativeError(what, 0) for failures that have no errno.
[[noreturn]] void ThrowMessage(const std::string& what);

}  // namespace smesh
