#include "link_faults.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include "profile.hpp"
#include "usage_error.hpp"

namespace dtb::netem {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

// The comma-separated items of TEXT, trimmed; none for an empty text.
std::vector<std::string> items(const std::string& text) {
  std::vector<std::string> out;
  if (trim(text).empty()) return out;
  for (size_t start = 0;;) {
    const size_t comma = std::min(text.find(',', start), text.size());
    out.push_back(trim(text.substr(start, comma - start)));
    if (comma == text.size()) return out;
    start = comma + 1;
  }
}

// Reads one faults.* value: every error is one line naming the key and the entry.
struct Parser {
  const Profile& profile;
  std::string key, allowed;

  [[noreturn]] void fail(const std::string& entry, const std::string& what) const {
    throw UsageError("faults." + key + ": '" + entry + "': " + what + " (" + allowed + ")");
  }
  double number(const std::string& text, const std::string& entry) const {
    double v = 0;
    const std::string t = trim(text);
    const auto [end, err] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || err != std::errc() || end != t.data() + t.size() || !std::isfinite(v))
      fail(entry, "'" + t + "' is not a number");
    return v;
  }
  int site(const std::string& name, const std::string& entry) const {
    for (size_t i = 0; i < profile.sites.size(); ++i)
      if (profile.sites[i].name == name) return int(i);
    std::string names;
    for (const Site& s : profile.sites) names += (names.empty() ? "" : ", ") + s.name;
    fail(entry, "no site '" + name + "' in profile '" + profile.name + "' (its sites: " + names + ")");
  }
  // "*", "A" or "A:B".
  LinkMatch link(const std::string& text, const std::string& entry) const {
    const std::string t = trim(text);
    if (t == "*") return {};
    const size_t colon = t.find(':');
    if (colon == std::string::npos) return {site(t, entry), LinkMatch::kAny};
    return {site(trim(t.substr(0, colon)), entry), site(trim(t.substr(colon + 1)), entry)};
  }
};

}  // namespace

bool LinkMatch::matches(int sa, int sb) const {
  if (a == kAny) return sa != sb;
  if (b == kAny) return sa != sb && (sa == a || sb == a);
  return (sa == a && sb == b) || (sa == b && sb == a);
}

bool LinkFaults::is_shaped(int sa, int sb) const {
  return std::any_of(shaped.begin(), shaped.end(), [&](const LinkMatch& m) { return m.matches(sa, sb); });
}

double LinkFaults::bandwidth_factor(double t) const {
  double f = 1;
  for (const RatePoint& p : bandwidth) {
    if (p.time > t) break;
    f = p.factor;
  }
  return f;
}

LinkState LinkFaults::state(int sa, int sb, double t) const {
  LinkState s;
  for (const Outage& o : outages)
    if (o.link.matches(sa, sb) && o.start <= t && t < o.end) s.up = false;
  if (is_shaped(sa, sb)) {
    s.rate_factor = bandwidth_factor(t);
    s.bursty = burst.on();
  }
  return s;
}

double LinkFaults::next_change(int sa, int sb, double t) const {
  double next = kInf;
  for (const Outage& o : outages)
    if (o.link.matches(sa, sb))
      for (double edge : {o.start, o.end})
        if (edge > t) next = std::min(next, edge);
  if (is_shaped(sa, sb))
    for (const RatePoint& p : bandwidth)
      if (p.time > t) next = std::min(next, p.time);
  return next;
}

double LinkFaults::serve_until(int sa, int sb, double t, double seconds) const {
  // Piece by piece between state changes: while up, a piece serves its length x factor of
  // full-rate work; while down, none. Outages end, so this ends.
  for (;;) {
    const LinkState s = state(sa, sb, t);
    const double next = next_change(sa, sb, t);
    if (s.up) {
      if (seconds <= 0) return t;
      const double need = seconds / s.rate_factor;
      if (t + need <= next) return t + need;
      seconds -= (next - t) * s.rate_factor;
    }
    t = next;
  }
}

LinkFaults resolve_link_faults(const LinkFaultSpec& spec, const Profile& profile) {
  LinkFaults f;
  f.burst = spec.burst;
  const Parser outages{profile, "outages", "allowed: LINK@START..END, comma-separated, LINK = A:B, A or *, seconds"};
  for (const std::string& e : items(spec.outages)) {
    const size_t at = e.find('@'), dots = e.find("..");
    if (at == std::string::npos || dots == std::string::npos || dots < at) outages.fail(e, "expected LINK@START..END");
    Outage o{outages.link(e.substr(0, at), e), outages.number(e.substr(at + 1, dots - at - 1), e),
             outages.number(e.substr(dots + 2), e)};
    if (o.start < 0 || o.end <= o.start) outages.fail(e, "an outage must end after it starts, at times >= 0");
    f.outages.push_back(o);
  }
  const Parser links{profile, "links", "allowed: * (every link between sites), or A:B and A (every link of site A), comma-separated"};
  for (const std::string& e : items(spec.links)) f.shaped.push_back(links.link(e, e));
  const Parser bandwidth{profile, "bandwidth", "allowed: TIME:FACTOR, comma-separated, times increasing, factors in (0, 1e6]"};
  for (const std::string& e : items(spec.bandwidth)) {
    const size_t colon = e.find(':');
    if (colon == std::string::npos) bandwidth.fail(e, "expected TIME:FACTOR");
    const RatePoint p{bandwidth.number(e.substr(0, colon), e), bandwidth.number(e.substr(colon + 1), e)};
    if (p.time < 0 || (!f.bandwidth.empty() && p.time <= f.bandwidth.back().time))
      bandwidth.fail(e, "times must be >= 0 and increasing");
    if (!(p.factor > 0 && p.factor <= 1e6)) bandwidth.fail(e, "the factor must be in (0, 1e6] (an outage stops a link)");
    f.bandwidth.push_back(p);
  }
  if (f.burst.on() && !(f.burst.leave > 0))
    throw UsageError("faults.burst_leave: must be > 0 when faults.burst_enter > 0 (a burst must be able to end)");
  return f;
}

}  // namespace dtb::netem
