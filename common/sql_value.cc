#include "common/sql_value.h"

#include <cstdio>

namespace pact {

std::string SqlValueToString(const SqlValue& value) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "NULL"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%g", v);
      return buf;
    }
    std::string operator()(const std::string& v) const { return v; }
    std::string operator()(const Blob& v) const {
      static const char kHex[] = "0123456789abcdef";
      std::string out = "x'";
      for (unsigned char c : v.bytes) {
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
      return out + "'";
    }
  };
  return std::visit(Visitor{}, value);
}

}  // namespace pact
