#pragma once
// Comma-separated integer lists from the command line ("5,17,42"): --ids, --batch, --concurrency.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dsrt {

// The items of `s` in order. An item that is not an integer in [lo, hi] throws dsrt::Error
// "<option>: '<item>' (item N) is not <what>"; `check(value, N)` (optional) may throw for other
// rules, and runs as each item is read, so the first bad item is the one reported.
std::vector<int64_t> parse_int_list(const std::string& s, const std::string& option, int64_t lo, int64_t hi,
                                    const std::string& what,
                                    const std::function<void(int64_t value, size_t item)>& check = {});

}  // namespace dsrt
