#pragma once
// A collective on paper: its messages, round by round, and what netem makes of them.
// Every algorithm file says which messages its algorithm sends (ring_allreduce_rounds,
// ...); from that one description come its time (replay: netem's rules for the links each
// message actually takes, no MPI, no Communicator) and its bytes by link class (traffic).
// The virtual clock, `dtbench coll`'s model column and the simulator all use them.
//
// A round is what every rank does at once: a ring or halving-doubling step (one sendrecv
// per rank), a tree level (a send or a receive), a gossip round (two sends, two receives).
// Within a round each rank first sends (in order, through its egress NIC, starting when its
// previous round ended), then takes what it receives, in order of arrival. That is how the
// algorithms run on a Communicator, so on any links the replay is the virtual clock's time
// without jitter or loss. Per message of m payload bytes from a to b, ready at t (netem's
// rules, with the cost formulas' terms: alpha(a, b), beta(a, b), and the NIC caps in
// seconds per payload byte):
//   egress:  start = max(egress free, t);   sender free = start + m beta_egress
//   path:    depart = max(sender free, max(path a->b free, start) + m beta(a, b))
//   arrival = depart + alpha(a, b)
//   ingress: done = max(arrival, max(ingress free, arrival - m max(beta, beta_egress)) + m beta_ingress)
// A rank's round ends at its last sender-free or receive done; the collective ends when
// the last rank's does. On uniform links this gives each algorithm's closed form.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "network.hpp"

namespace dtb::coll {

// One message: FROM and TO are local ranks (indices into the group's rank list).
struct Message {
  int from = 0, to = 0;
  double bytes = 0;  // payload on the wire
};
using RoundSink = std::function<void(std::span<const Message>)>;
// Emits a collective's rounds in order.
using Rounds = std::function<void(const RoundSink&)>;

// Seconds from a common start until every rank of RANKS (netem ranks, in the algorithm's
// local order) has finished ROUNDS.
double replay(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds);
// When each rank finishes, the ranks starting at START (one time per rank; empty: all at 0).
std::vector<double> replay_each(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds,
                                std::span<const double> start = {});

// A rank whose egress NIC the collective shares with the rank's other channel (netem's
// NicQueue, as the simulator keeps one per stage): the replay books that rank's capped
// messages on NIC, on CHANNEL, where the other channel left it free, instead of on a NIC of
// its own; so they wait for, or fill the gaps of, what was booked there before.
struct SharedNic {
  int rank = 0;  // local rank
  netem::NicQueue* nic = nullptr;
  int channel = 0;
};
std::vector<double> replay_each(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds,
                                std::span<const double> start, std::span<const SharedNic> shared);
// The intervals each rank's egress NIC is busy with the messages of ROUNDS that meet an
// egress cap (nic:, or the host's share), in time order, the ranks starting at START as in
// replay_each: what the simulator books on a rank's NIC (netem::NicQueue) beside its other
// channel, so the two share the NIC as netem's virtual clock has them share it.
struct NicBusy {
  double start = 0, end = 0;
};
std::vector<std::vector<NicBusy>> egress_busy(const netem::NetworkModel& net, std::span<const int> ranks,
                                              const Rounds& rounds, std::span<const double> start = {});
// What ROUNDS send, summed over the group's ranks, by link class (netem sites), as
// Communicator::stats counts it; the most one rank sends; and the worst latency and
// seconds per byte among the links that carry a message.
struct Traffic {
  double intra = 0, inter = 0, busiest = 0;
  double worst_alpha = 0, worst_beta = 0;
  Traffic& operator+=(const Traffic& o);
};
Traffic traffic(const netem::NetworkModel& net, std::span<const int> ranks, const Rounds& rounds);
// BYTES from A to B (a point-to-point message).
Traffic p2p_traffic(const netem::NetworkModel& net, int a, int b, double bytes);

// The NIC caps a message from netem rank A to B meets (a host's share when it leaves the
// host), as seconds per payload byte (0: unlimited), headers included, for messages of
// about N bytes.
struct NicBeta {
  double egress = 0, ingress = 0;
};
NicBeta nic_betas(const netem::NetworkModel& net, int a, int b, double n);

}  // namespace dtb::coll
