// Reading integers from parsed JSON (nlohmann) without undefined behaviour:
// j.get<int>() also converts a float, and 1e300 does not fit an int. Files
// embark reads back (manifests, data specs, trainer state) go through here.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

namespace embark {

// j.at(key) as a T: it must be a JSON integer in [lo, hi]; otherwise throws
// std::runtime_error naming the key (callers turn exceptions into a Status).
template <class T>
T IntAt(const nlohmann::json& j, const char* key, T lo = std::numeric_limits<T>::min(),
        T hi = std::numeric_limits<T>::max()) {
  const nlohmann::json& v = j.at(key);
  bool fits = false;
  T out{};
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    fits = std::in_range<T>(u) && std::cmp_greater_equal(u, lo) && std::cmp_less_equal(u, hi);
    out = static_cast<T>(u);
  } else if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    fits = std::in_range<T>(x) && std::cmp_greater_equal(x, lo) && std::cmp_less_equal(x, hi);
    out = static_cast<T>(x);
  }
  if (!fits)
    throw std::runtime_error("'" + std::string(key) + "' must be an integer in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], not " + v.dump().substr(0, 40));
  return out;
}

}  // namespace embark
