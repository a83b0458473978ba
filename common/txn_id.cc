#include "common/txn_id.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>

#include <random>

namespace pact {

std::string TxnId::ToString() const {
  return coordinator + "." + std::to_string(epoch) + "." + std::to_string(seq);
}

bool IsValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  }
  return true;
}

namespace {
bool ParsePositive(const std::string& text, int64_t* out) {
  if (text.empty() || text.size() > 18) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = std::strtoll(text.c_str(), nullptr, 10);
  return *out > 0;
}
}  // namespace

Result<TxnId> TxnId::Parse(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("malformed transaction id '" + text +
                                   "' (expected <coordinator>.<epoch>.<seq>)");
  };
  size_t second = text.rfind('.');
  if (second == std::string::npos || second == 0) return bad();
  size_t first = text.rfind('.', second - 1);
  if (first == std::string::npos) return bad();
  TxnId id;
  id.coordinator = text.substr(0, first);
  if (!IsValidName(id.coordinator)) return bad();
  if (!ParsePositive(text.substr(first + 1, second - first - 1), &id.epoch)) return bad();
  if (!ParsePositive(text.substr(second + 1), &id.seq)) return bad();
  return id;
}

std::string RandomIncarnation() {
  std::random_device device;
  uint64_t value = (static_cast<uint64_t>(device()) << 32) ^ device();
  static const char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) out[i] = kHex[value & 0xf];
  return out;
}

}  // namespace pact
