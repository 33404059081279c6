#include "sim/sweep.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <limits>
#include <optional>

#include "sim/sim_config.hpp"
#include "units.hpp"

namespace dtb::sim {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t end; (end = text.find(sep, start)) != std::string::npos; start = end + 1)
    parts.push_back(text.substr(start, end - start));
  parts.push_back(text.substr(start));
  return parts;
}

std::optional<double> parse_number(const std::string& text) {
  double v = 0;
  const auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  if (res.ec != std::errc() || res.ptr != text.data() + text.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The numeric value of TEXT for KIND (bits/s for rates), or nullopt.
std::optional<double> numeric(ValueKind kind, const std::string& text) {
  switch (kind) {
    case ValueKind::kBandwidth: {
      const auto bytes = netem::units::parse_bandwidth(text);
      if (!bytes) return std::nullopt;
      return *bytes > 0 ? *bytes * 8 : std::numeric_limits<double>::infinity();
    }
    case ValueKind::kDuration: return netem::units::parse_duration(text);
    case ValueKind::kNumber: return parse_number(text);
    case ValueKind::kText: return std::nullopt;
  }
  return std::nullopt;
}

double round_significant(double v, int digits) {
  if (v == 0) return 0;
  const double scale = std::pow(10.0, digits - 1 - int(std::floor(std::log10(std::fabs(v)))));
  return std::round(v * scale) / scale;
}

// The text a config takes for the numeric value X.
std::string value_text(ValueKind kind, double x, bool integer) {
  switch (kind) {
    case ValueKind::kBandwidth: return netem::units::format_bandwidth(x / 8);
    case ValueKind::kDuration: return netem::units::format_duration(x);
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, integer ? "%.0f" : "%.6g", x);
      return buf;
    }
  }
}

std::string label_of(const std::string& value) {
  if (value.ends_with(".yaml")) return std::filesystem::path(value).stem().string();
  return value;
}

// lo:hi:logN / linN / N -> N points (integer keys: rounded, duplicates dropped).
void fill_range(SweepAxis& axis, const std::vector<std::string>& parts, bool integer, const std::string& where) {
  const auto lo = numeric(axis.kind, parts[0]), hi = numeric(axis.kind, parts[1]);
  std::string steps = parts[2];
  const bool log = steps.starts_with("log");
  if (log || steps.starts_with("lin")) steps = steps.substr(3);
  const auto n = parse_number(steps);
  if (!lo || !hi || !n || *n < 2 || *n > 10000 || *n != std::floor(*n) || std::isinf(*lo) || std::isinf(*hi) ||
      (log && (*lo <= 0 || *hi <= 0)))
    throw UsageError(where + ": expected lo:hi:logN, lo:hi:linN or lo:hi:N with 2 <= N <= 10000 (log: lo, hi > 0)");
  for (int i = 0; i < int(*n); ++i) {
    const double f = double(i) / (*n - 1);
    double x = log ? *lo * std::pow(*hi / *lo, f) : *lo + (*hi - *lo) * f;
    x = integer ? std::round(x) : round_significant(x, 3);
    if (!axis.x.empty() && x == axis.x.back()) continue;
    axis.x.push_back(x);
    axis.values.push_back(value_text(axis.kind, x, integer));
  }
}

Config with_value(const Config& base, const std::string& key, const std::string& value, const std::string& origin) {
  Config c = base;
  c.set_value(key, value, origin);
  return c;
}

}  // namespace

ValueKind value_kind(const Config& config, const std::string& key) {
  if (key == "net.bandwidth" || key == "net.inter_bandwidth") return ValueKind::kBandwidth;
  if (key == "net.latency" || key == "net.inter_latency") return ValueKind::kDuration;
  for (const KeySpec& s : config.schema())
    if (s.key == key) return s.type == KeyType::kInt || s.type == KeyType::kFloat ? ValueKind::kNumber : ValueKind::kText;
  return ValueKind::kText;
}

SweepAxis parse_axis(const Config& base, const std::string& spec, const std::string& option) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw UsageError(option + " '" + spec + "': expected KEY=v1,v2,... or KEY=lo:hi:logN, e.g. " +
                     "net.bandwidth=100Mbps:400Gbps:log20");
  SweepAxis axis;
  axis.key = spec.substr(0, eq);
  const auto& keys = base.schema();
  if (std::none_of(keys.begin(), keys.end(), [&](const KeySpec& s) { return s.key == axis.key; }))
    Config(base).set_value(axis.key, "", option);  // throws: unknown key, with a suggestion
  axis.kind = value_kind(base, axis.key);
  const std::string where = option + " '" + spec + "'";
  const std::vector<std::string> range = split(spec.substr(eq + 1), ':');
  if (range.size() == 3 && axis.kind != ValueKind::kText) {
    const bool integer =
        std::any_of(keys.begin(), keys.end(), [&](const KeySpec& s) { return s.key == axis.key && s.type == KeyType::kInt; });
    fill_range(axis, range, integer, where);
    return axis;
  }
  for (const std::string& v : split(spec.substr(eq + 1), ',')) {
    const std::optional<double> x = numeric(axis.kind, v);
    if (axis.kind != ValueKind::kText && !x)
      throw UsageError(where + ": value '" + v + "' is not " +
                       (axis.kind == ValueKind::kBandwidth ? "a bandwidth like 25Gbps"
                        : axis.kind == ValueKind::kDuration ? "a duration like 10ms" : "a number"));
    axis.values.push_back(v);
    axis.x.push_back(x.value_or(kNaN));
  }
  return axis;
}

std::vector<SweepPoint> run_sweep(const Config& base, const SweepAxis& axis) {
  std::vector<SweepPoint> points;
  for (size_t i = 0; i < axis.values.size(); ++i) {
    const Config c = with_value(base, axis.key, axis.values[i], "--sweep " + axis.key);
    points.push_back({label_of(axis.values[i]), std::isnan(axis.x[i]) ? double(i) : axis.x[i],
                      simulate(sim_settings(c))});
  }
  return points;
}

std::vector<SweepPoint> run_sweep(const Config& base, const SweepAxis& axis, const SweepAxis& by) {
  std::vector<SweepPoint> points;
  for (const std::string& value : by.values)
    for (SweepPoint& p : run_sweep(with_value(base, by.key, value, "--sweep " + by.key), axis)) {
      p.series = label_of(value);
      points.push_back(std::move(p));
    }
  return points;
}

std::vector<SweepPoint> run_marks(const Config& base, const SweepAxis& marks, const SweepAxis& swept) {
  std::vector<SweepPoint> points;
  for (const std::string& value : marks.values) {
    const Config c = with_value(base, marks.key, value, "--mark " + marks.key);
    SweepPoint p{label_of(value), 0, simulate(sim_settings(c))};
    switch (swept.kind) {
      case ValueKind::kBandwidth: p.x = p.result.slowest_link_Bps * 8; break;
      case ValueKind::kDuration: p.x = p.result.largest_latency_s; break;
      case ValueKind::kNumber: p.x = c.get_float(swept.key); break;
      case ValueKind::kText:
        throw UsageError("--mark " + marks.key + ": marks need a numeric sweep; --sweep " + swept.key + " is not");
    }
    points.push_back(std::move(p));
  }
  return points;
}

}  // namespace dtb::sim
