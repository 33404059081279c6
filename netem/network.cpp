#include "network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>

namespace dtb::netem {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A rate of 0 in a profile means "unlimited"; internally that is +inf so min() just works.
double rate_or_inf(double bytes_per_s) { return bytes_per_s > 0 ? bytes_per_s : kInf; }

// Seconds to push BYTES through a server of RATE bytes/s (0 s when unlimited).
double serialize_s(uint64_t bytes, double rate) {
  return std::isinf(rate) ? 0.0 : double(bytes) / rate;
}

// netem's own counter-based SplitMix64 (netem must not depend on trainer/): one stream per
// (seed, a, b, message index), so a draw never depends on traffic elsewhere.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class MessageRng {
 public:
  MessageRng(uint64_t seed, int a, int b, uint64_t index)
      : state_(mix64(mix64(mix64(seed) ^ uint64_t(a)) ^ (uint64_t(b) << 32) ^ mix64(index))) {}
  uint64_t next() { return mix64(state_ += 0x9e3779b97f4a7c15ULL); }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {  // Box-Muller; 1 - u keeps the log finite
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  uint64_t state_;
};

double jitter_draw(const LinkSpec& link, MessageRng& rng) {
  if (link.jitter_s <= 0) return 0.0;
  if (link.jitter_dist == "uniform") return link.jitter_s * (2.0 * rng.uniform() - 1.0);
  return link.jitter_s * rng.normal();
}

// Number of lost segments out of N, each lost with probability P: Binomial(N, P), drawn
// deterministically from RNG. Exact CDF inversion while the mean is small (the usual case:
// loss rates of 1e-4..1e-2); a rounded normal approximation for large means, where
// inversion would be slow and (1-p)^n underflows.
uint64_t lost_segments(uint64_t n, double p, MessageRng& rng) {
  if (n == 0 || p <= 0) return 0;
  if (p >= 1) return n;  // a Gilbert-Elliott Bad state that loses every segment
  const double mean = double(n) * p;
  if (mean < 30.0) {
    const double u = rng.uniform();
    double pmf = std::pow(1.0 - p, double(n)), cdf = pmf;
    uint64_t k = 0;
    while (u >= cdf && k < n) {
      pmf *= double(n - k) / double(k + 1) * p / (1.0 - p);
      cdf += pmf;
      ++k;
      if (pmf == 0.0) break;  // rounding left the tail; k is already far beyond the mean
    }
    return k;
  }
  const double k = std::round(mean + rng.normal() * std::sqrt(mean * (1.0 - p)));
  return uint64_t(std::clamp(k, 0.0, double(n)));
}

}  // namespace

NicQueue::Booking NicQueue::book(int channel, double ready, double seconds) {
  double t = std::max(ready, channel_free_[channel]);
  if (seconds <= 0) {  // unlimited: no queue to share
    channel_free_[channel] = t;
    return {t, t};
  }
  // Walk the busy intervals from T on, taking each gap until SECONDS are served. With one
  // channel nothing is booked after its own last end, so this is start = t, end = t + s.
  std::vector<Interval> taken;
  double left = seconds;
  // Disjoint and in time order, so their ends are sorted too: the first one ending after T.
  auto it = std::partition_point(busy_.begin(), busy_.end(), [&](const Interval& i) { return i.end <= t; });
  for (;;) {
    if (it != busy_.end() && it->start <= t) {
      t = std::max(t, it->end);  // inside a busy interval: skip to its end
      ++it;
      continue;
    }
    const double gap_end = it == busy_.end() ? kInf : it->start;
    // A gap that fits the rest up to rounding takes it (t + left may pass gap_end by an ulp:
    // the touching intervals then merge), rather than leave a sliver after the next interval.
    if (gap_end - t >= left * (1 - 1e-12)) {
      taken.push_back({t, t + left});
      break;
    }
    taken.push_back({t, gap_end});
    left -= gap_end - t;
    t = gap_end;  // the interval at IT starts here
  }
  for (const Interval& i : taken) insert(i);
  channel_free_[channel] = taken.back().end;
  drop_unreachable();
  return {taken.front().start, taken.back().end};
}

void NicQueue::hold(int channel, double t) {
  channel_free_[channel] = std::max(channel_free_[channel], t);
  drop_unreachable();
}

void NicQueue::drop_unreachable() {
  const double floor = *std::min_element(std::begin(channel_free_), std::end(channel_free_));
  busy_.erase(busy_.begin(),
              std::partition_point(busy_.begin(), busy_.end(), [&](const Interval& i) { return i.end <= floor; }));
}

void NicQueue::insert(Interval busy) {
  auto it = std::lower_bound(busy_.begin(), busy_.end(), busy.start,
                             [](const Interval& i, double start) { return i.start < start; });
  it = busy_.insert(it, busy);
  // Merge with touching neighbours, so a busy stretch stays one interval.
  if (it + 1 != busy_.end() && (it + 1)->start <= it->end) {
    it->end = std::max(it->end, (it + 1)->end);
    busy_.erase(it + 1);
  }
  if (it != busy_.begin() && (it - 1)->end >= it->start) {
    (it - 1)->end = std::max((it - 1)->end, it->end);
    busy_.erase(it);
  }
  if (busy_.size() > kMaxIntervals) {
    busy_[0].end = busy_[1].end;
    busy_.erase(busy_.begin() + 1);
  }
}

NetworkModel::NetworkModel(Profile profile, int world_size)
    : profile_(std::move(profile)),
      world_(world_size),
      egress_(size_t(world_size)),
      ingress_(size_t(world_size)),
      path_free_(size_t(world_size) * size_t(world_size), 0.0),
      path_last_arrival_(size_t(world_size) * size_t(world_size), 0.0),
      path_messages_(size_t(world_size) * size_t(world_size), 0),
      path_burst_(profile_.faults.burst.on() ? size_t(world_size) * size_t(world_size) : 0) {
  if (world_size < 1 || profile_.rank_site.size() < size_t(world_size))
    throw std::invalid_argument("NetworkModel: profile '" + profile_.name + "' places " +
                                std::to_string(profile_.rank_site.size()) + " ranks, world is " +
                                std::to_string(world_size));
  host_ = profile_.rank_hosts();
  for (int h : host_) {
    if (size_t(h) >= host_size_.size()) host_size_.resize(size_t(h) + 1, 0);
    ++host_size_[size_t(h)];
  }
}

double NetworkModel::host_egress(int rank) const {
  return rate_or_inf(profile_.hosts.egress_Bps) / double(host_size_[size_t(host_of(rank))]);
}
double NetworkModel::host_ingress(int rank) const {
  return rate_or_inf(profile_.hosts.ingress_Bps) / double(host_size_[size_t(host_of(rank))]);
}

double NetworkModel::egress_rate(int a, int b) const {
  const double nic = rate_or_inf(profile_.nic_egress_Bps);
  return host_of(a) == host_of(b) ? nic : std::min(nic, host_egress(a));
}

double NetworkModel::ingress_rate(int a, int b) const {
  const double nic = rate_or_inf(profile_.nic_ingress_Bps);
  return host_of(a) == host_of(b) ? nic : std::min(nic, host_ingress(b));
}

int NetworkModel::site_of(int rank) const { return profile_.rank_site.at(size_t(rank)); }

uint64_t NetworkModel::wire_bytes(uint64_t payload) const {
  if (profile_.header_bytes == 0 || profile_.segment_bytes == 0) return payload;
  const uint64_t segments = (payload + profile_.segment_bytes - 1) / profile_.segment_bytes;
  return payload + segments * profile_.header_bytes;
}

double NetworkModel::path_rate(int a, int b) const {
  const LinkSpec& link = profile_.link(a, b);
  double rate = rate_or_inf(link.bandwidth_Bps);
  // A TCP sender has at most one window in flight per round trip.
  if (profile_.tcp_window_bytes > 0 && link.latency_s > 0)
    rate = std::min(rate, double(profile_.tcp_window_bytes) / (2.0 * link.latency_s));
  return rate;
}


double NetworkModel::alpha(int a, int b) const {
  return a == b ? 0.0 : profile_.link(a, b).latency_s;
}

double NetworkModel::beta(int a, int b) const {
  if (a == b) return 0.0;
  const double rate = std::min({path_rate(a, b), egress_rate(a, b), ingress_rate(a, b)});
  if (std::isinf(rate)) return 0.0;
  double wire_per_payload = 1.0;
  if (profile_.header_bytes > 0 && profile_.segment_bytes > 0)
    wire_per_payload += double(profile_.header_bytes) / double(profile_.segment_bytes);
  return wire_per_payload / rate;
}

// The path's extra one-way delay for message INDEX on a->b: jitter (the delay never goes
// below 0) plus one retransmission timeout per lost segment.
double NetworkModel::path_delay(int a, int b, uint64_t payload, uint64_t index) const {
  const LinkSpec& link = profile_.link(a, b);
  MessageRng rng(profile_.seed, a, b, index);
  double delay = std::max(0.0, link.latency_s + jitter_draw(link, rng));
  if (link.loss_rate > 0 && profile_.segment_bytes > 0) {
    const uint64_t segments = (payload + profile_.segment_bytes - 1) / profile_.segment_bytes;
    delay += double(lost_segments(segments, link.loss_rate, rng)) * profile_.rto_s;
  }
  return delay;
}

// Bursty loss (faults.burst_*): the segments of message INDEX on a->b go through the
// path's Gilbert-Elliott chain; each lost one costs an rto. Drawn from a stream of its
// own (the message's stream with a tag), so jitter and independent loss draw as before.
double NetworkModel::burst_delay(int a, int b, uint64_t payload, uint64_t index) {
  const GilbertElliott& ge = profile_.faults.burst;
  if (profile_.segment_bytes == 0) return 0;
  MessageRng rng(profile_.seed ^ 0x6765b0b5ULL, a, b, index);
  const uint64_t segments = (payload + profile_.segment_bytes - 1) / profile_.segment_bytes;
  uint64_t lost = 0;
  path_burst_[size_t(a) * size_t(world_) + size_t(b)].advance(
      ge, segments, [&] { return rng.uniform(); },
      [&](bool bad, uint64_t n) { lost += lost_segments(n, bad ? ge.loss_bad : ge.loss_good, rng); });
  return double(lost) * profile_.rto_s;
}

SendTiming NetworkModel::on_send(int a, int b, uint64_t bytes, double ready, Stream channel) {
  if (a == b) return {ready, ready, ready};  // a rank's message to itself costs nothing
  const uint64_t wire = wire_bytes(bytes);
  const size_t pair = size_t(a) * size_t(world_) + size_t(b);

  // Egress NIC: FIFO per channel, the NIC's time shared between rank a's channels. A
  // message without a cap (inside a host, or no NIC cap) does not pass it.
  const double nic_rate = egress_rate(a, b);
  const NicQueue::Booking egress = std::isinf(nic_rate)
                                       ? NicQueue::Booking{ready, ready}
                                       : egress_[size_t(a)].book(channel_index(channel), ready, serialize_s(wire, nic_rate));
  const double egress_start = egress.start, sender_free = egress.end;

  // Path a->b: its first byte comes in when the egress starts (cut-through); its last byte
  // cannot leave before it has left the egress.
  const double path_start = std::max(path_free_[pair], egress_start);
  const double serve = serialize_s(wire, path_rate(a, b));
  const LinkFaults& faults = profile_.faults;
  const double depart = faults.empty()
                            ? std::max(sender_free, path_start + serve)
                            : faults.serve_until(site_of(a), site_of(b),  // and the last byte leaves while up
                                                 std::max(sender_free, faults.serve_until(site_of(a), site_of(b), path_start, serve)), 0);
  path_free_[pair] = depart;

  // Latency, jitter and loss; never earlier than the previous arrival (no reordering).
  const uint64_t index = path_messages_[pair]++;
  double delay = path_delay(a, b, bytes, index);
  if (faults.burst.on() && faults.state(site_of(a), site_of(b), depart).bursty) delay += burst_delay(a, b, bytes, index);
  const double arrival = std::max(path_last_arrival_[pair], depart + delay);
  path_last_arrival_[pair] = arrival;
  return {sender_free, depart, arrival};
}

double NetworkModel::on_receive(int b, int a, uint64_t bytes, double wire_arrival, Stream channel) {
  // Without an ingress cap there is no ingress queue: a message is done when it arrives.
  // (Booking one anyway would make a receive wait for whatever arrived-later message was
  // booked before it, e.g. a DP chunk completed on the wall clock's comm thread.)
  if (a == b || !std::isfinite(ingress_rate(a, b))) return wire_arrival;
  const uint64_t wire = wire_bytes(bytes);
  // The receiver only knows when the last byte reached it; the bytes are taken to have
  // streamed in at the upstream bottleneck rate, so the first byte came that much earlier.
  const double upstream = std::min(egress_rate(a, b), path_rate(a, b));
  const double first_byte = wire_arrival - serialize_s(wire, upstream);
  NicQueue& ingress = ingress_[size_t(b)];
  const int c = channel_index(channel);
  const double done = std::max(wire_arrival, ingress.book(c, first_byte, serialize_s(wire, ingress_rate(a, b))).end);
  ingress.hold(c, done);
  return done;
}

}  // namespace dtb::netem
