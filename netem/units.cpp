#include "units.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace dtb::netem::units {
namespace {

struct Unit {
  std::string_view suffix;
  double scale;
};

constexpr Unit kBitRates[] = {  // bits per second: SI names, then tc(8)'s
    {"bps", 1},   {"kbps", 1e3}, {"Kbps", 1e3}, {"Mbps", 1e6}, {"Gbps", 1e9}, {"Tbps", 1e12},
    {"bit", 1},   {"kbit", 1e3}, {"Kbit", 1e3}, {"mbit", 1e6}, {"Mbit", 1e6}, {"gbit", 1e9},
    {"Gbit", 1e9}, {"tbit", 1e12}, {"Tbit", 1e12}};
constexpr Unit kDurations[] = {{"s", 1}, {"ms", 1e-3}, {"us", 1e-6}, {"ns", 1e-9}};
constexpr Unit kSizes[] = {{"", 1},         {"B", 1},           {"KB", 1e3},
                           {"kB", 1e3},     {"MB", 1e6},        {"GB", 1e9},
                           {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// "<number><unit>" with a finite number >= 0 and a unit from UNITS: the number x scale.
template <size_t N>
std::optional<double> parse_scaled(std::string_view text, const Unit (&table)[N]) {
  text = trim(text);
  double value = 0;
  const auto res = std::from_chars(text.data(), text.data() + text.size(), value);
  if (res.ec != std::errc() || !std::isfinite(value) || value < 0) return std::nullopt;
  const std::string_view suffix = trim(std::string_view(res.ptr, text.data() + text.size()));
  for (const Unit& unit : table)
    if (suffix == unit.suffix) return value * unit.scale;
  return std::nullopt;
}

std::string shortest(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", v);  // 12 digits hide the 1e9/8*8 round-off
  return buf;
}

}  // namespace

std::optional<double> parse_bandwidth(std::string_view text) {
  if (trim(text) == "unlimited") return 0.0;
  auto bits = parse_scaled(text, kBitRates);
  if (!bits || *bits <= 0) return std::nullopt;
  return *bits / 8.0;
}

std::optional<double> parse_duration(std::string_view text) {
  if (trim(text) == "0") return 0.0;
  return parse_scaled(text, kDurations);
}

std::optional<uint64_t> parse_bytes(std::string_view text) {
  auto bytes = parse_scaled(text, kSizes);
  if (!bytes || *bytes != std::floor(*bytes) || *bytes >= 0x1p63) return std::nullopt;
  return uint64_t(*bytes);
}

std::optional<double> parse_fraction(std::string_view text) {
  text = trim(text);
  const bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  const Unit plain[] = {{"", percent ? 0.01 : 1.0}};
  auto value = parse_scaled(text, plain);
  if (!value || *value >= 1.0) return std::nullopt;
  return value;
}

std::string format_bandwidth(double bytes_per_s) {
  if (bytes_per_s <= 0 || std::isinf(bytes_per_s)) return "unlimited";
  constexpr Unit kNames[] = {{"Tbps", 1e12}, {"Gbps", 1e9}, {"Mbps", 1e6}, {"kbps", 1e3}};
  const double bits = bytes_per_s * 8.0;
  for (const Unit& unit : kNames)
    if (bits >= unit.scale) return shortest(bits / unit.scale) + std::string(unit.suffix);
  return shortest(bits) + "bps";
}

std::string format_duration(double seconds) {
  if (seconds == 0) return "0";
  if (seconds >= 1) return shortest(seconds) + "s";
  if (seconds >= 1e-3) return shortest(seconds * 1e3) + "ms";
  if (seconds >= 1e-6) return shortest(seconds * 1e6) + "us";
  return shortest(seconds * 1e9) + "ns";
}

uint64_t kbit_per_s(double bytes_per_s) {
  const double kbit = std::round(bytes_per_s * 8.0 / 1e3);
  return kbit < 1 ? 1 : uint64_t(kbit);
}

}  // namespace dtb::netem::units
