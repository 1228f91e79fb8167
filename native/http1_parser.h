// Strict HTTP/1.1 message-head parser and chunked-body decoder for the native HTTP/1.1 engine (hand-written, no llhttp:
// node exports llhttp's symbols but no header, and its struct layout would have to match node's bundled version).
// Anything that two parsers could read differently (request-smuggling shapes) is an error, never "repaired".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace smesh::http1 {

struct HeadLimits {
  size_t max_head_bytes = 64 * 1024;  // request/status line + headers + CRLFs; over it: 431
  size_t max_headers = 100;           // over it: 431
  size_t max_start_line = 8 * 1024;   // request line; over it: 400
};

enum class BodyKind { kNone, kLength, kChunked, kUntilClose };

// A parsed head. Header names are lower-cased; values have their surrounding whitespace removed.
struct Head {
  // request
  std::string method, target;
  // response
  int status = 0;
  std::string reason;
  int minor = 1;  // HTTP/1.<minor>
  std::vector<std::pair<std::string, std::string>> headers;
  // derived framing and connection facts
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;
  bool upgrade = false;                        // request: Connection: upgrade + Upgrade (or CONNECT, or the HTTP/2 preface as PRI *)
  bool expect_continue = false;                // request: Expect: 100-continue
  std::string authority;                       // request: absolute-form authority, else Host
  std::vector<std::string> connection_tokens;  // lower-cased tokens of Connection (hop-by-hop names)
};

enum class ParseResult { kIncomplete, kDone, kError };

// Parse state kept across calls while a head arrives in pieces (each call rescans only the new bytes for line ends).
class HeadParser {
 public:
  explicit HeadParser(const HeadLimits& limits) : limits_(limits) {}
  void Reset() {
    scanned_ = 0;
    lines_ = 0;
    leading_ = 0;
  }
  // `data` holds everything received since the head started (leading empty lines included). On kDone `*consumed` is the
  // head's length including its final empty line; on kError `*status` is the answer (400, 431, 505, 417, 501 or 502 for
  // a response) and `*detail` says what was wrong.
  ParseResult ParseRequest(std::string_view data, Head* out, size_t* consumed, int* status, std::string* detail);
  // `request_method`: HEAD has no response body; CONNECT 2xx neither.
  ParseResult ParseResponse(std::string_view data, std::string_view request_method, Head* out, size_t* consumed, int* status, std::string* detail);

 private:
  ParseResult Scan(std::string_view data, bool request, size_t* end, int* status, std::string* detail);
  HeadLimits limits_;
  size_t scanned_ = 0;
  size_t lines_ = 0;
  size_t leading_ = 0;  // leading CRLFs skipped (requests only)
};

// Incremental chunked-body decoder (RFC 9112 §7.1): chunk sizes of at most 16 hex digits below 2^63, extensions
// validated and dropped, trailers validated as header fields. Feed() stops at the end of the body.
class ChunkDecoder {
 public:
  struct Span {
    const char* p;
    size_t n;
  };
  explicit ChunkDecoder(size_t max_trailer_bytes = 16 * 1024) : max_trailer_(max_trailer_bytes) {}
  // Consumes up to `n` bytes; appends the data pieces to `data` (pointers into `p`) and, at the end, the raw trailer
  // field lines (each with CRLF) to `trailers`. Returns the bytes consumed; error() tells a malformed body.
  size_t Feed(const char* p, size_t n, std::vector<Span>* data, std::string* trailers);
  bool done() const { return state_ == State::kDone; }
  bool error() const { return state_ == State::kError; }
  const char* error_detail() const { return detail_; }
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  enum class State { kSize, kSizeBws, kExt, kSizeLf, kData, kDataCr, kDataLf, kTrailerStart, kTrailerLine, kTrailerLf, kLastLf, kDone, kError };
  void Fail(const char* d) {
    state_ = State::kError;
    detail_ = d;
  }
  State state_ = State::kSize;
  uint64_t size_ = 0;
  int digits_ = 0;
  size_t line_bytes_ = 0;
  uint64_t remaining_ = 0;
  uint64_t data_bytes_ = 0;
  size_t max_trailer_;
  size_t trailer_bytes_ = 0;
  std::string line_;  // current trailer line
  const char* detail_ = "";
};

// Character classes (RFC 9110 §5.6.2 tchar; field-vchar with SP/HTAB and obs-text).
bool IsTokenChar(unsigned char c);
bool IsFieldValueChar(unsigned char c);
// Validates one "name: value" trailer or header line without its CRLF.
bool ValidFieldLine(std::string_view line);
std::string Lower(std::string_view s);

}  // namespace smesh::http1
