#include "runtime/int_list.h"

#include <fmt/format.h>

#include "runtime/error.h"

namespace dsrt {

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& option, int64_t lo, int64_t hi,
                                    const std::string& what, const std::function<void(int64_t, size_t)>& check) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(start, end - start);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (...) {
      used = 0;  // not a number, or out of long long's range
    }
    if (item.empty() || used != item.size() || v < lo || v > hi)
      throw Error(fmt::format("{}: '{}' (item {}) is not {}", option, item, out.size() + 1, what));
    if (check) check(v, out.size() + 1);
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

}  // namespace dsrt
