#include "sim/format.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dtb::sim {
namespace {

// To three significant digits, before choosing a unit: 999.9996 prints as "1 k", not "1e+03".
double round3(double v) {
  if (v == 0 || !std::isfinite(v)) return v;
  const double scale = std::pow(10.0, 2 - std::floor(std::log10(std::fabs(v))));
  return std::round(v * scale) / scale;
}

// V in the largest unit of UNITS (each FACTOR times the previous) that keeps it >= 1,
// three significant digits.
std::string scaled(double v, const char* const* units, int count, double factor, const char* space) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return "inf";
  v = round3(v);
  int i = 0;
  while (i + 1 < count && std::fabs(v) >= factor) v /= factor, ++i;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g%s%s", v, space, units[i]);
  return buf;
}

std::string with_separators(double v) {
  char digits[64];
  std::snprintf(digits, sizeof digits, "%.0f", v);
  std::string s = digits, out;
  const size_t lead = s[0] == '-' ? 1 : 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > lead && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

}  // namespace

std::string format_seconds(double s) {
  if (std::isnan(s)) return "-";
  if (std::isinf(s)) return "inf";
  char buf[64];
  if (std::fabs(s) < 1000) s = round3(s);
  const double a = std::fabs(s);
  // Below a picosecond a time is the round-off of a difference of larger times (a bubble
  // of -2.5e-13 s): no step part is that short.
  if (a < 1e-12) return "0 s";
  if (a >= 1000) return with_separators(s) + " s";
  if (a >= 1) std::snprintf(buf, sizeof buf, "%.3g s", s);
  else if (a >= 1e-3) std::snprintf(buf, sizeof buf, "%.3g ms", s * 1e3);
  else if (a >= 1e-6) std::snprintf(buf, sizeof buf, "%.3g us", s * 1e6);
  else std::snprintf(buf, sizeof buf, "%.3g ns", s * 1e9);
  return buf;
}

std::string format_bytes(double b) {
  static const char* const units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  return scaled(b, units, 7, 1000, " ");
}

std::string format_count(double n) {
  static const char* const units[] = {"", "k", "M", "B", "T"};
  return scaled(n, units, 5, 1000, "");
}

std::string format_flops(double f) {
  static const char* const units[] = {"FLOP", "kFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP"};
  return scaled(f, units, 7, 1000, " ");
}

std::string format_rate(double bits_per_s) {
  if (std::isinf(bits_per_s)) return "unlimited";
  static const char* const units[] = {"bps", "kbps", "Mbps", "Gbps", "Tbps"};
  return scaled(bits_per_s, units, 5, 1000, " ");
}

std::string format_percent(double fraction) { return format_fixed(100 * fraction, 1) + "%"; }

std::string format_percent_sig(double fraction) {
  if (std::isnan(fraction)) return "-";
  const double v = round3(100 * fraction);
  if (v == 0 || std::isinf(v)) return format_fixed(v, 0) + "%";
  const int digits = std::clamp(2 - int(std::floor(std::log10(std::fabs(v)))), 0, 12);
  return format_fixed(v, digits) + "%";
}

std::string format_fixed(double v, int digits) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace dtb::sim
