#include "cost_model.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <vector>

namespace dtb::coll {
namespace {

// The queues of one replay: per rank its time and NICs, per used path its last departure.
struct Queues {
  const netem::NetworkModel& net;
  std::span<const int> ranks;
  std::vector<double> time, egress_free, ingress_free;
  std::unordered_map<int64_t, double> path_free;  // from * p + to
  std::vector<std::vector<NicBusy>>* egress = nullptr;  // egress_busy's record, when asked
  std::span<const SharedNic> shared;                    // NICs booked outside the replay

  static constexpr double kIdle = -std::numeric_limits<double>::infinity();  // a queue never used
  Queues(const netem::NetworkModel& n, std::span<const int> r)
      : net(n), ranks(r), time(r.size(), 0.0), egress_free(r.size(), kIdle), ingress_free(r.size(), kIdle) {}

  struct InFlight {
    double arrival, first_byte;
    double ingress;  // the receiver's NIC cap for this message, seconds per byte (0: none)
  };
  // The sender's side of M, ready at READY; moves the sender's round end to its sender free.
  InFlight send(const Message& m, double ready, double round_bytes, std::vector<double>& ends) {
    const int a = ranks[size_t(m.from)], b = ranks[size_t(m.to)];
    const NicBeta nic = nic_betas(net, a, b, round_bytes);
    const double beta = net.beta(a, b);
    double start = std::max(egress_free[size_t(m.from)], ready);
    double sender_free = start + m.bytes * nic.egress;
    for (const SharedNic& s : shared)
      if (s.rank == m.from && nic.egress > 0) {
        const netem::NicQueue::Booking b = s.nic->book(s.channel, start, m.bytes * nic.egress);
        start = b.start, sender_free = b.end;
      }
    egress_free[size_t(m.from)] = sender_free;
    if (egress && nic.egress > 0) (*egress)[size_t(m.from)].push_back({start, sender_free});
    double& path = path_free.try_emplace(int64_t(m.from) * int64_t(ranks.size()) + m.to, kIdle).first->second;
    const double depart = std::max(sender_free, std::max(path, start) + m.bytes * beta);
    path = depart;
    ends[size_t(m.from)] = std::max(ends[size_t(m.from)], sender_free);
    const double arrival = depart + net.alpha(a, b);
    return {arrival, arrival - m.bytes * std::max(beta, nic.egress), nic.ingress};
  }
  // The receiver's side: through its ingress NIC, in order of arrival.
  double receive(const Message& m, const InFlight& f) {
    if (f.ingress == 0) return f.arrival;  // no ingress cap, no ingress queue (netem's rule)
    double& free = ingress_free[size_t(m.to)];
    free = std::max(f.arrival, std::max(free, f.first_byte) + m.bytes * f.ingress);
    return free;
  }
};

void run_round(Queues& q, std::span<const Message> round) {
  if (round.empty()) return;
  double largest = 0;
  for (const Message& m : round) largest = std::max(largest, m.bytes);
  std::vector<double> ends = q.time;
  std::vector<Queues::InFlight> flights;
  flights.reserve(round.size());
  for (const Message& m : round) flights.push_back(q.send(m, q.time[size_t(m.from)], largest, ends));
  std::vector<size_t> order(round.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return flights[x].arrival < flights[y].arrival; });
  for (size_t i : order) {
    const Message& m = round[i];
    ends[size_t(m.to)] = std::max(ends[size_t(m.to)], q.receive(m, flights[i]));
  }
  q.time = std::move(ends);
}

// Every round of ROUNDS, the ranks starting at START (empty: all at 0).
void run_rounds(Queues& q, const Rounds& rounds, std::span<const double> start) {
  if (!start.empty()) q.time.assign(start.begin(), start.end());
  if (q.ranks.size() > 1) rounds([&](std::span<const Message> round) { run_round(q, round); });
}

}  // namespace

NicBeta nic_betas(const netem::NetworkModel& net, int a, int b, double n) {
  const double wire_per_byte = n >= 1 ? double(net.wire_bytes(uint64_t(n))) / n : 1.0;
  auto per_byte = [&](double rate) { return std::isinf(rate) ? 0.0 : wire_per_byte / rate; };
  return {per_byte(net.egress_rate(a, b)), per_byte(net.ingress_rate(a, b))};
}

std::vector<double> replay_each(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds,
                                std::span<const double> start) {
  Queues q(net, ranks);
  run_rounds(q, rounds, start);
  return q.time;
}

std::vector<std::vector<NicBusy>> egress_busy(const netem::NetworkModel& net, std::span<const int> ranks,
                                              const Rounds& rounds, std::span<const double> start) {
  std::vector<std::vector<NicBusy>> busy(ranks.size());
  Queues q(net, ranks);
  q.egress = &busy;
  run_rounds(q, rounds, start);
  return busy;
}

std::vector<double> replay_each(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds,
                                std::span<const double> start, std::span<const SharedNic> shared) {
  Queues q(net, ranks);
  q.shared = shared;
  run_rounds(q, rounds, start);
  return q.time;
}

double replay(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds) {
  if (ranks.size() <= 1) return 0.0;
  const std::vector<double> done = replay_each(net, ranks, rounds);
  return *std::max_element(done.begin(), done.end());
}

Traffic& Traffic::operator+=(const Traffic& o) {
  intra += o.intra;
  inter += o.inter;
  busiest = std::max(busiest, o.busiest);
  worst_alpha = std::max(worst_alpha, o.worst_alpha);
  worst_beta = std::max(worst_beta, o.worst_beta);
  return *this;
}

Traffic p2p_traffic(const netem::NetworkModel& net, int a, int b, double bytes) {
  Traffic t;
  if (a == b) return t;
  (net.same_site(a, b) ? t.intra : t.inter) = bytes;
  t.busiest = bytes;
  t.worst_alpha = net.alpha(a, b);
  t.worst_beta = net.beta(a, b);
  return t;
}

Traffic traffic(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds) {
  Traffic t;
  if (ranks.size() <= 1) return t;
  std::vector<double> sent(ranks.size(), 0.0);
  rounds([&](std::span<const Message> round) {
    for (const Message& m : round) {
      Traffic one = p2p_traffic(net, ranks[size_t(m.from)], ranks[size_t(m.to)], m.bytes);
      one.busiest = 0;
      t += one;
      sent[size_t(m.from)] += m.bytes;
    }
  });
  t.busiest = *std::max_element(sent.begin(), sent.end());
  return t;
}

}  // namespace dtb::coll
