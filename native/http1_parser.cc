// Strict HTTP/1.1 head parser and chunked decoder (see http1_parser.h): line ends must be CRLF, no obs-fold, no
// control characters in values, one Content-Length of digits only, Transfer-Encoding exactly "chunked" and never
// together with Content-Length.
#include "http1_parser.h"

#include <algorithm>
#include <cstring>

namespace smesh::http1 {

namespace {

constexpr size_t kMaxLeadingEmptyLines = 4;
constexpr size_t kMaxMethod = 32;
constexpr size_t kMaxContentLengthDigits = 18;  // < 10^18 < 2^63
constexpr size_t kMaxChunkLine = 4096;

bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }

int HexValue(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view TrimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!IsTokenChar(c)) return false;
  return true;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// Host / authority characters (RFC 3986 reg-name, IP literals, port); no userinfo.
bool ValidHost(std::string_view h) {
  for (unsigned char c : h) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c)) continue;
    if (std::strchr("-._~!$&'()*+,;=:[]%", c) == nullptr || c == 0) return false;
  }
  return true;
}

// Splits the head (without its final empty line) into lines; each line has no CR/LF (Scan checked the terminators).
std::vector<std::string_view> Lines(std::string_view head) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start < head.size()) {
    size_t crlf = head.find("\r\n", start);
    if (crlf == std::string_view::npos) crlf = head.size();
    out.push_back(head.substr(start, crlf - start));
    start = crlf + 2;
  }
  return out;
}

// Parses header field lines into `out`; fills the framing facts common to requests and responses.
// Returns false with `detail` set on a malformed field.
struct FieldFacts {
  int content_lengths = 0;
  bool content_length_bad = false;
  int transfer_encodings = 0;
  bool te_chunked_only = true;
  int hosts = 0;
  std::string host;
  bool has_upgrade_header = false;
  bool connection_upgrade = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  std::string expect;
  bool has_expect = false;
};

bool ParseFields(const std::vector<std::string_view>& lines, size_t first, Head* out, FieldFacts* f, std::string* detail) {
  for (size_t i = first; i < lines.size(); i++) {
    std::string_view line = lines[i];
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      *detail = "obsolete line folding (a header line starting with whitespace)";
      return false;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      *detail = "header line without a field name and colon";
      return false;
    }
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) {
      *detail = "invalid character in header field name";
      return false;
    }
    std::string_view value = TrimOws(line.substr(colon + 1));
    for (unsigned char c : value)
      if (!IsFieldValueChar(c)) {
        *detail = "NUL or control character in the value of header " + std::string(name);
        return false;
      }
    std::string lname = Lower(name);
    if (lname == "content-length") {
      f->content_lengths++;
      if (value.empty() || value.size() > kMaxContentLengthDigits) f->content_length_bad = true;
      uint64_t v = 0;
      for (unsigned char c : value) {
        if (!IsDigit(c)) {
          f->content_length_bad = true;
          break;
        }
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      out->content_length = v;
    } else if (lname == "transfer-encoding") {
      f->transfer_encodings++;
      if (!EqualsIgnoreCase(value, "chunked")) f->te_chunked_only = false;
    } else if (lname == "host") {
      f->hosts++;
      f->host = std::string(value);
    } else if (lname == "connection") {
      size_t pos = 0;
      while (pos <= value.size()) {
        size_t comma = value.find(',', pos);
        if (comma == std::string_view::npos) comma = value.size();
        std::string_view tok = TrimOws(value.substr(pos, comma - pos));
        if (!tok.empty()) {
          if (!IsToken(tok)) {
            *detail = "invalid token in Connection";
            return false;
          }
          std::string lt = Lower(tok);
          if (lt == "close")
            f->connection_close = true;
          else if (lt == "keep-alive")
            f->connection_keep_alive = true;
          else if (lt == "upgrade")
            f->connection_upgrade = true;
          out->connection_tokens.push_back(std::move(lt));
        }
        pos = comma + 1;
      }
    } else if (lname == "upgrade") {
      f->has_upgrade_header = true;
    } else if (lname == "expect") {
      f->has_expect = true;
      f->expect = Lower(value);
    }
    out->headers.emplace_back(std::move(lname), std::string(value));
  }
  return true;
}

// "HTTP/1.1" → 1, "HTTP/1.0" → 0; -2 for another well-formed version (505), -1 for garbage.
int ParseVersion(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !IsDigit(v[5]) || v[6] != '.' || !IsDigit(v[7])) return -1;
  if (v[5] == '1' && (v[7] == '1' || v[7] == '0')) return v[7] - '0';
  return -2;
}

}  // namespace

bool IsTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c)) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsFieldValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool ValidFieldLine(std::string_view line) {
  if (line.empty() || line[0] == ' ' || line[0] == '\t') return false;
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) return false;
  for (unsigned char c : line.substr(colon + 1))
    if (!IsFieldValueChar(c)) return false;
  return true;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return out;
}

ParseResult HeadParser::Scan(std::string_view data, bool request, size_t* end, int* status, std::string* detail) {
  // Line starts are recomputed from scanned_: the last line start is the byte after the last LF before scanned_.
  size_t line_start = 0;
  if (scanned_ > 0) {
    size_t lf = data.rfind('\n', scanned_ - 1);
    line_start = lf == std::string_view::npos ? 0 : lf + 1;
  }
  for (size_t i = scanned_; i < data.size(); i++) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '\r') {
      if (i + 1 >= data.size()) {
        scanned_ = i;
        return ParseResult::kIncomplete;
      }
      if (data[i + 1] != '\n') {
        *status = 400;
        *detail = "bare CR in the message head";
        return ParseResult::kError;
      }
      size_t len = i - line_start;
      i++;
      if (len == 0) {
        if (lines_ == 0 && request && leading_ < kMaxLeadingEmptyLines) {
          leading_++;
          line_start = i + 1;
          continue;
        }
        if (lines_ == 0) {
          *status = request ? 400 : 502;
          *detail = "empty line where the start line was expected";
          return ParseResult::kError;
        }
        *end = i + 1;
        return ParseResult::kDone;
      }
      lines_++;
      if (lines_ > limits_.max_headers + 1) {
        *status = request ? 431 : 502;
        *detail = "more than " + std::to_string(limits_.max_headers) + " header fields";
        return ParseResult::kError;
      }
      line_start = i + 1;
      continue;
    }
    if (c == '\n') {
      *status = request ? 400 : 502;
      *detail = "bare LF in the message head (lines must end with CRLF)";
      return ParseResult::kError;
    }
    if (lines_ == 0 && request) {
      // Reject a request line of the wrong alphabet at once instead of waiting for its end: token method, then
      // visible ASCII separated by single spaces.
      bool in_method = data.substr(line_start, i - line_start).find(' ') == std::string_view::npos;
      if (in_method ? !(IsTokenChar(c) || c == ' ') : !(c > 0x20 && c < 0x7f) && c != ' ') {
        *status = 400;
        *detail = "invalid character in the request line";
        return ParseResult::kError;
      }
    }
    if (lines_ == 0 && i - line_start >= limits_.max_start_line) {
      *status = request ? 400 : 502;
      *detail = "start line longer than " + std::to_string(limits_.max_start_line) + " bytes";
      return ParseResult::kError;
    }
    if (i - leading_ * 2 >= limits_.max_head_bytes) {
      *status = request ? 431 : 502;
      *detail = "message head larger than " + std::to_string(limits_.max_head_bytes) + " bytes";
      return ParseResult::kError;
    }
  }
  scanned_ = data.size();
  return ParseResult::kIncomplete;
}

ParseResult HeadParser::ParseRequest(std::string_view data, Head* out, size_t* consumed, int* status, std::string* detail) {
  size_t end = 0;
  ParseResult r = Scan(data, true, &end, status, detail);
  if (r != ParseResult::kDone) return r;
  auto fail = [&](int st, std::string d) {
    *status = st;
    *detail = std::move(d);
    return ParseResult::kError;
  };
  size_t start = leading_ * 2;
  std::vector<std::string_view> lines = Lines(data.substr(start, end - 2 - start));
  std::string_view rl = lines[0];
  size_t sp1 = rl.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "request line is not METHOD SP target SP version");
  std::string_view method = rl.substr(0, sp1), target = rl.substr(sp1 + 1, sp2 - sp1 - 1), version = rl.substr(sp2 + 1);
  if (!IsToken(method) || method.size() > kMaxMethod) return fail(400, "invalid request method");
  if (target.empty()) return fail(400, "empty request target");
  for (unsigned char c : target)
    if (c <= 0x20 || c >= 0x7f) return fail(400, "invalid character in the request target");
  int minor = ParseVersion(version);
  // The HTTP/2 prior-knowledge preface (RFC 9113 §3.4) begins like a request ("PRI * HTTP/2.0", no fields): reported as
  // an upgrade request (method PRI, target *) so that the caller can take the connection over to an HTTP/2 server.
  if (minor == -2 && method == "PRI" && target == "*" && version == "HTTP/2.0" && lines.size() == 1) {
    out->method = "PRI";
    out->target = "*";
    out->minor = 1;
    out->keep_alive = false;
    out->upgrade = true;
    *consumed = end;
    return ParseResult::kDone;
  }
  if (minor == -2) return fail(505, "HTTP version not supported (HTTP/1.0 and HTTP/1.1 only)");
  if (minor < 0) return fail(400, "malformed HTTP version");
  out->method = std::string(method);
  out->target = std::string(target);
  out->minor = minor;
  FieldFacts f;
  if (!ParseFields(lines, 1, out, &f, detail)) return fail(400, *detail);
  bool connect = method == "CONNECT";
  // Request target forms (RFC 9112 §3.2).
  std::string target_authority;
  if (connect) {
    if (target[0] == '/' || target.find('/') != std::string_view::npos || !ValidHost(target)) return fail(400, "CONNECT needs an authority-form target");
    target_authority = std::string(target);
  } else if (target[0] == '/') {
  } else if (target == "*") {
    if (method != "OPTIONS") return fail(400, "asterisk-form target is for OPTIONS only");
  } else {
    size_t scheme = target.find("://");
    if (scheme == std::string_view::npos || !(EqualsIgnoreCase(target.substr(0, scheme), "http") || EqualsIgnoreCase(target.substr(0, scheme), "https")))
      return fail(400, "request target is neither origin-form nor absolute-form");
    std::string_view rest = target.substr(scheme + 3);
    size_t end_auth = rest.find_first_of("/?#");
    target_authority = std::string(rest.substr(0, end_auth == std::string_view::npos ? rest.size() : end_auth));
    if (target_authority.empty() || !ValidHost(target_authority)) return fail(400, "invalid authority in an absolute-form target");
  }
  if (f.hosts > 1) return fail(400, "more than one Host header");
  if (minor == 1 && f.hosts == 0) return fail(400, "HTTP/1.1 request without Host");
  if (f.hosts == 1 && !ValidHost(f.host)) return fail(400, "invalid Host header");
  out->authority = !target_authority.empty() ? target_authority : f.host;
  // Framing: the smuggling shapes are errors.
  if (f.content_lengths > 1) return fail(400, "more than one Content-Length");
  if (f.content_length_bad) return fail(400, "Content-Length is not a decimal number of at most 18 digits");
  if (f.transfer_encodings > 0) {
    if (f.content_lengths > 0) return fail(400, "both Content-Length and Transfer-Encoding");
    if (minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (f.transfer_encodings > 1 || !f.te_chunked_only) return fail(400, "Transfer-Encoding other than a single final chunked");
    out->body = BodyKind::kChunked;
  } else if (f.content_lengths == 1 && out->content_length > 0) {
    out->body = BodyKind::kLength;
  }
  out->keep_alive = minor == 1 ? !f.connection_close : (f.connection_keep_alive && !f.connection_close);
  out->upgrade = connect || (f.connection_upgrade && f.has_upgrade_header);
  if (f.has_expect && minor == 1) {
    if (f.expect != "100-continue") return fail(417, "unsupported Expect value");
    out->expect_continue = out->body != BodyKind::kNone;
  }
  *consumed = end;
  return ParseResult::kDone;
}

ParseResult HeadParser::ParseResponse(std::string_view data, std::string_view request_method, Head* out, size_t* consumed, int* status, std::string* detail) {
  size_t end = 0;
  ParseResult r = Scan(data, false, &end, status, detail);
  if (r != ParseResult::kDone) return r;
  auto fail = [&](std::string d) {
    *status = 502;
    *detail = std::move(d);
    return ParseResult::kError;
  };
  std::vector<std::string_view> lines = Lines(data.substr(0, end - 2));
  std::string_view sl = lines[0];
  if (sl.size() < 12 || sl[8] != ' ') return fail("malformed status line");
  int minor = ParseVersion(sl.substr(0, 8));
  if (minor < 0) return fail("upstream HTTP version is not 1.0 or 1.1");
  if (!IsDigit(sl[9]) || !IsDigit(sl[10]) || !IsDigit(sl[11]) || (sl.size() > 12 && sl[12] != ' ')) return fail("malformed status code");
  int code = (sl[9] - '0') * 100 + (sl[10] - '0') * 10 + (sl[11] - '0');
  if (code < 100 || code > 599) return fail("status code out of range");
  std::string_view reason = sl.size() > 13 ? sl.substr(13) : std::string_view();
  for (unsigned char c : reason)
    if (!IsFieldValueChar(c)) return fail("control character in the reason phrase");
  out->status = code;
  out->reason = std::string(reason);
  out->minor = minor;
  FieldFacts f;
  if (!ParseFields(lines, 1, out, &f, detail)) return fail(*detail);
  if (f.content_lengths > 1) return fail("more than one Content-Length in the response");
  if (f.content_length_bad) return fail("invalid Content-Length in the response");
  if (f.transfer_encodings > 0 && f.content_lengths > 0) return fail("both Content-Length and Transfer-Encoding in the response");
  if (f.transfer_encodings > 0 && (f.transfer_encodings > 1 || !f.te_chunked_only)) return fail("response Transfer-Encoding other than chunked");
  out->keep_alive = minor == 1 ? !f.connection_close : (f.connection_keep_alive && !f.connection_close);
  bool no_body = request_method == "HEAD" || code < 200 || code == 204 || code == 304 || (request_method == "CONNECT" && code < 300);
  if (no_body)
    out->body = BodyKind::kNone;
  else if (f.transfer_encodings > 0)
    out->body = BodyKind::kChunked;
  else if (f.content_lengths == 1)
    out->body = out->content_length > 0 ? BodyKind::kLength : BodyKind::kNone;
  else {
    out->body = BodyKind::kUntilClose;
    out->keep_alive = false;
  }
  *consumed = end;
  return ParseResult::kDone;
}

size_t ChunkDecoder::Feed(const char* p, size_t n, std::vector<Span>* data, std::string* trailers) {
  size_t i = 0;
  while (i < n && state_ != State::kDone && state_ != State::kError) {
    unsigned char c = static_cast<unsigned char>(p[i]);
    switch (state_) {
      case State::kSize: {
        int v = HexValue(c);
        if (v >= 0) {
          if (digits_ == 16 || size_ > (static_cast<uint64_t>(INT64_MAX) >> 4)) {
            Fail("chunk size larger than 2^63");
            break;
          }
          size_ = size_ * 16 + static_cast<uint64_t>(v);
          digits_++;
          line_bytes_++;
          i++;
          break;
        }
        if (digits_ == 0) {
          Fail("chunk size is not a hexadecimal number");
          break;
        }
        if (c == '\r')
          state_ = State::kSizeLf;
        else if (c == ';')
          state_ = State::kExt;
        else if (c == ' ' || c == '\t')
          state_ = State::kSizeBws;
        else {
          Fail("invalid character after the chunk size");
          break;
        }
        i++;
        break;
      }
      case State::kSizeBws:
        if (c == ';')
          state_ = State::kExt;
        else if (c != ' ' && c != '\t') {
          Fail("whitespace after the chunk size not followed by an extension");
          break;
        }
        i++;
        break;
      case State::kExt:
        if (++line_bytes_ > kMaxChunkLine) {
          Fail("chunk extension too long");
          break;
        }
        if (c == '\r')
          state_ = State::kSizeLf;
        else if (!(c == '\t' || (c >= 0x20 && c != 0x7f))) {
          Fail("control character in a chunk extension");
          break;
        }
        i++;
        break;
      case State::kSizeLf:
        if (c != '\n') {
          Fail("chunk size line not ended by CRLF");
          break;
        }
        i++;
        if (size_ == 0)
          state_ = State::kTrailerStart;
        else {
          remaining_ = size_;
          state_ = State::kData;
        }
        size_ = 0;
        digits_ = 0;
        line_bytes_ = 0;
        break;
      case State::kData: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, n - i));
        if (data) data->push_back({p + i, take});
        i += take;
        remaining_ -= take;
        data_bytes_ += take;
        if (remaining_ == 0) state_ = State::kDataCr;
        break;
      }
      case State::kDataCr:
        if (c != '\r') {
          Fail("chunk data not followed by CRLF");
          break;
        }
        state_ = State::kDataLf;
        i++;
        break;
      case State::kDataLf:
        if (c != '\n') {
          Fail("chunk data not followed by CRLF");
          break;
        }
        state_ = State::kSize;
        i++;
        break;
      case State::kTrailerStart:
        if (c == '\r') {
          state_ = State::kLastLf;
          i++;
        } else {
          line_.clear();
          state_ = State::kTrailerLine;
        }
        break;
      case State::kTrailerLine:
        if (c == '\r')
          state_ = State::kTrailerLf;
        else if (c == '\n') {
          Fail("bare LF in the trailer section");
          break;
        } else {
          if (++trailer_bytes_ > max_trailer_) {
            Fail("trailer section too large");
            break;
          }
          line_.push_back(static_cast<char>(c));
        }
        i++;
        break;
      case State::kTrailerLf:
        if (c != '\n' || !ValidFieldLine(line_)) {
          Fail("malformed trailer field");
          break;
        }
        if (trailers) {
          trailers->append(line_);
          trailers->append("\r\n");
        }
        state_ = State::kTrailerStart;
        i++;
        break;
      case State::kLastLf:
        if (c != '\n') {
          Fail("chunked body not ended by CRLF");
          break;
        }
        state_ = State::kDone;
        i++;
        break;
      case State::kDone:
      case State::kError: break;
    }
  }
  return i;
}

}  // namespace smesh::http1
