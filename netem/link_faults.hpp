#pragma once
// Link faults on purpose (the trainer's faults.* keys, configs/README.md): outages of
// chosen links for a time window, bandwidth that changes over time, and bursty loss
// (Gilbert-Elliott). Deterministic: a fault is a function of time and of the seeded
// per-path draws, nothing else. This file is the one answer to "what is the link between
// sites A and B doing at time t"; NetworkModel::on_send asks it for every message (so the
// virtual clock and the wall clock's sleeps both honour it) and `dtbench sim` walks a run
// through the same states (sim/fault_run.hpp).
//
// - Outage [start, end) of a link: it carries nothing; a message's bytes wait on the path
//   and go on when it is back (the path is a fluid server: bytes served before the outage
//   stay served). The last byte never departs while the link is down.
// - Bandwidth schedule: (time, factor) points; from each point's time on, the path's rate
//   (link bandwidth, or TCP window / RTT where that binds) is multiplied by its factor
//   (1 before the first point).
// - Bursty loss, Gilbert-Elliott: each path is a two-state Markov chain advanced once per
//   segment; Good -> Bad with probability `enter`, Bad -> Good with probability `leave`; a
//   segment is lost with probability loss_good in Good and loss_bad in Bad. Each lost
//   segment costs one retransmission timeout, as the profile's independent loss does
//   (network.hpp); both apply where both are set. Long-run loss rate
//   (leave loss_good + enter loss_bad) / (enter + leave); with loss_good = 0, loss_bad = 1
//   a burst of losses lasts 1 / leave segments on average.
// Times are seconds on the run's clock: virtual time, or real seconds since the common
// epoch set at start-up (wall clock).
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace dtb::netem {

struct Profile;

// Which links a fault touches, by site index.
struct LinkMatch {
  static constexpr int kAny = -1;
  int a = kAny, b = kAny;  // both kAny: every link between two sites; b kAny: every link between
                           // site a and another site; both given: that link (a == b: inside site a)
  bool matches(int site_a, int site_b) const;
};

struct Outage {
  LinkMatch link;
  double start = 0, end = 0;
};

struct RatePoint {
  double time = 0, factor = 1;
};

struct GilbertElliott {
  double enter = 0;       // P(Good -> Bad) per segment; 0 = off
  double leave = 1;       // P(Bad -> Good) per segment
  double loss_good = 0, loss_bad = 1;
  bool on() const { return enter > 0; }
  double bad_share() const { return enter / (enter + leave); }  // stationary P(Bad)
  double loss_rate() const { return (1 - bad_share()) * loss_good + bad_share() * loss_bad; }
};

// A path's chain: its state and the segments left before it changes (a sojourn in a state
// is geometric, so it is drawn whole instead of one coin per segment).
struct BurstChain {
  bool started = false, bad = false;
  uint64_t left = 0;
  // Takes the next N segments through the chain, in runs of one state: RUN(bad, count) for
  // each run in order. UNIFORM() draws from [0, 1).
  template <class Uniform, class Run>
  void advance(const GilbertElliott& ge, uint64_t n, Uniform&& uniform, Run&& run);
};

// What a link is doing at one time.
struct LinkState {
  bool up = true;
  double rate_factor = 1;  // multiplies the path's rate while up
  bool bursty = false;     // the Gilbert-Elliott loss applies
};

struct LinkFaults {
  std::vector<Outage> outages;
  std::vector<LinkMatch> shaped;      // the links the bandwidth schedule and the bursty loss apply to
  std::vector<RatePoint> bandwidth;   // time-ordered
  GilbertElliott burst;

  bool empty() const { return outages.empty() && bandwidth.empty() && !burst.on(); }
  bool is_shaped(int site_a, int site_b) const;
  // The state of the link between sites SA and SB at time T.
  LinkState state(int sa, int sb, double t) const;
  // The first time after T at which that state changes (+infinity: never).
  double next_change(int sa, int sb, double t) const;
  // When work of SECONDS at the link's full rate, begun at T, is done: at the rate the
  // state gives over time, nothing while down. SECONDS = 0: the first time from T on that
  // the link is up.
  double serve_until(int sa, int sb, double t, double seconds) const;
  // The bandwidth factor of a shaped link at T (1 before the first point).
  double bandwidth_factor(double t) const;
};

// The faults as the config gives them (faults.* keys), resolved against a profile's site
// names by resolve_link_faults.
struct LinkFaultSpec {
  std::string outages;    // "A:B@2..3.5, C@10..12, *@0..1" (link@start..end, seconds)
  std::string links = "*";  // the shaped links: "*", or "A:B, C"
  std::string bandwidth;  // "2:0.25, 4:1" (time:factor)
  GilbertElliott burst;
};

// Throws UsageError (one line naming the faults.* key, the entry and what is allowed) for a
// malformed entry, a site the profile does not have, an outage that does not end after it
// starts, a factor outside (0, 1e6] or times out of order.
LinkFaults resolve_link_faults(const LinkFaultSpec& spec, const Profile& profile);

template <class Uniform, class Run>
void BurstChain::advance(const GilbertElliott& ge, uint64_t n, Uniform&& uniform, Run&& run) {
  // Segments in a state before it changes: 1 + Geometric(p), by inversion (1 - u in (0, 1]).
  auto sojourn = [&](double p) -> uint64_t {
    if (p >= 1) return 1;
    const double k = std::floor(std::log(1.0 - uniform()) / std::log1p(-p));
    return k >= 1e18 ? uint64_t(1e18) : 1 + uint64_t(k);
  };
  if (!started) {  // the stationary distribution: a path found in the middle of its history
    started = true;
    bad = uniform() < ge.bad_share();
    left = sojourn(bad ? ge.leave : ge.enter);
  }
  while (n > 0) {
    if (left == 0) {
      bad = !bad;
      left = sojourn(bad ? ge.leave : ge.enter);
    }
    const uint64_t k = n < left ? n : left;
    run(bad, k);
    left -= k;
    n -= k;
  }
}

}  // namespace dtb::netem
