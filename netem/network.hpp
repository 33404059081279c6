#pragma once
// The network model: knows nothing about MPI or models. Given "rank a sends n bytes to
// rank b, ready at time t" it answers when the bytes leave, when the sender is free and
// when they arrive. Times are seconds (double) on whichever clock the caller runs
// (virtual or wall); the model itself is pure arithmetic and deterministic.
//
// Each message passes three FIFO servers in series: the sender's egress NIC, the path
// (the link between the two ranks' sites, one queue per ordered pair of ranks: a link's
// bandwidth is what one rank pair gets, as DT-FM's pairwise figures are measured), and the
// receiver's ingress NIC. Rates count wire bytes: w = wire_bytes(n) = n + ceil(n/segment)
// * header. Fluid, cut-through: bytes stream through all three servers, so
//   egress:  start_e = max(egress free, ready);      sender_free = start_e + w/E
//   path:    start_p = max(path free, start_e);      depart = max(sender_free, start_p + w/R)
//   delay:   arrival = max(previous arrival on a->b, depart + max(0, L + jitter) + k*rto)
//   ingress: start_i = max(ingress free, arrival - w/min(E, R));
//            done    = max(arrival, start_i + w/I)
// with E, I the NIC caps and R = min(link bandwidth, tcp_window / (2L)) (a TCP sender has
// one window per round trip); an unlimited rate serializes in 0 s. So one message on an
// idle path arrives at t + L + w/R; k back-to-back messages at t + L + k*w/R (netem's rule,
// departure = max(previous departure, now) + size/rate, at message granularity); p senders
// into one ingress cap C finish at t + L + p*w/C. The ingress only sees the last byte's
// arrival, so it takes the bytes to have streamed in at the upstream rate min(E, R).
//
// NIC caps: E = min(nic.egress, the host's share) and I likewise, where the host's share
// is hosts.egress / (ranks on the sender's host) for a message that leaves its host, and
// no cap for one between two ranks of one host (it takes the intra link: NVLink, PCIe).
// The share is static: each rank of a host gets 1/p of its NIC whether or not the others
// send (DT-FM's figures: 25 Gbps per 8-GPU node = 3.125 Gbps per GPU). The ranks are
// separate processes, each with its own copy of this model, so a queue really shared by a
// host's ranks would need their traffic in one place; the share is what every rank of a
// host sees when all of them send at once, the case of 3D-parallel training: p ranks of
// one host sending w bytes each at t all finish at t + L + p*w/C_host.
//
// Jitter and loss are drawn from a SplitMix64 stream seeded by (profile seed, a, b, index
// of the message on a->b): the same run gives the same draws whatever else happens. Jitter
// is normal (jitter = standard deviation) or uniform (jitter = half-width); the delay never
// goes below 0 and an arrival is never earlier than the one before it (no reordering, as
// netem with a rate). Loss is the delay a reliable transport sees, never lost data: the
// number k of lost segments out of ceil(n/segment) is Binomial(segments, loss_rate)
// (exact inversion for small means, a rounded normal for large), and each costs one
// retransmission timeout rto. Later messages on the path wait behind it (head-of-line).
// A rank's message to itself costs nothing (all times = ready; alpha = beta = 0).
//
// Link faults (profile.faults, link_faults.hpp): the path serves a message's bytes at its
// rate times the link's factor at each moment and not at all while the link is down
// (depart = the time that work is done, and never while down); on a link with bursty
// loss each path's Gilbert-Elliott chain decides which of its segments are lost, one rto
// each, on top of the independent loss above. The closed-form alpha and beta describe the
// link without its faults.
//
// Channels (clock.hpp): a rank's two communication channels (kComm: TP, PP, the rest; kDp:
// the DP buckets) each pass its NIC in their own FIFO order, and share the NIC's rate: a
// message takes the NIC's free time from max(ready, the channel's previous message done)
// on, filling the gaps the other channel's messages left (NicQueue). The virtual clock
// books a DP bucket's whole allreduce before the PP send that happens in the middle of
// it; the send then uses the NIC where the bucket does not, and waits only where the NIC
// is really busy. With one channel this is exactly the FIFO rule above. Paths are per rank
// pair, not per channel (a DP and a PP message to one peer queue on one path).
#include <cstdint>
#include <string>
#include <vector>

#include "clock.hpp"
#include "profile.hpp"

namespace dtb::netem {

// One NIC direction (egress or ingress) of one rank: the busy intervals it has booked, in
// time order, and where each channel's last message ended. Deterministic arithmetic.
class NicQueue {
 public:
  // A message of CHANNEL ready at READY that needs SECONDS of the NIC (0: unlimited):
  // starts at max(READY, the channel's last end), then takes the NIC's free time from
  // there on. Returns {first byte in, last byte out}.
  struct Booking {
    double start, end;
  };
  Booking book(int channel, double ready, double seconds);
  // The channel's next message starts no earlier than T (an ingress completes at the
  // wire arrival, which may come after its bytes were counted in).
  void hold(int channel, double t);

 private:
  // Every booking of a channel starts at or after that channel's last end, so intervals
  // that end before both channels' last ends can never be consulted again: they are
  // dropped. What remains is what one channel has booked ahead of the other. Beyond this
  // many (a channel thousands of messages ahead, or a single-channel run whose other
  // channel never books) the two oldest merge, their gap counted busy: pessimistic for the
  // idle channel's first message, never early.
  static constexpr size_t kMaxIntervals = 4096;
  struct Interval {
    double start, end;
  };
  void insert(Interval busy);
  void drop_unreachable();  // the intervals no booking can reach any more
  std::vector<Interval> busy_;  // disjoint, in time order
  double channel_free_[kNumChannels] = {0, 0};
};

// What the sender computes and sends along with the message.
struct SendTiming {
  double sender_free;   // the sender's egress NIC has serialized the last byte
  double depart;        // the last byte has left the path's queue (netem's departure)
  double wire_arrival;  // the last byte reaches the receiver, before its ingress NIC queue
};

class NetworkModel {
 public:
  NetworkModel(Profile profile, int world_size);

  // Sender side (rank a's state: its egress NIC, its paths a->*), on a's channel CHANNEL.
  SendTiming on_send(int a, int b, uint64_t bytes, double ready, Stream channel = Stream::kComm);
  // Receiver side (rank b's state: its ingress NIC), on b's channel CHANNEL. Call in the
  // order b completes receives; returns when the last byte has arrived.
  double on_receive(int b, int a, uint64_t bytes, double wire_arrival, Stream channel = Stream::kComm);

  // Closed-form alpha-beta terms of the path a->b (what the cost formulas use):
  // alpha = one-way latency (mean), beta = seconds per payload byte at the effective rate
  // min(path, egress NIC of a, ingress NIC of b, TCP window / RTT), headers included; the
  // NIC rates are those of a message a->b (a host's share when it leaves the host), so
  // beta is what the path gives when every rank of the host sends at once.
  double alpha(int a, int b) const;
  double beta(int a, int b) const;
  uint64_t wire_bytes(uint64_t payload) const;  // payload + per-segment headers
  // Effective rate of the path a->b in wire bytes/s: min(link bandwidth, TCP window / RTT);
  // +infinity when unlimited. NIC caps are separate servers (egress_rate, ingress_rate).
  double path_rate(int a, int b) const;
  // NIC caps in wire bytes/s that a message a->b meets at a's egress and at b's ingress
  // (nic:, and the host's share when a and b are on different hosts); +infinity if none.
  double egress_rate(int a, int b) const;
  double ingress_rate(int a, int b) const;
  int host_of(int rank) const { return host_[size_t(rank)]; }

  const Profile& profile() const { return profile_; }
  int world_size() const { return world_; }
  int site_of(int rank) const;
  bool same_site(int a, int b) const { return site_of(a) == site_of(b); }

 private:
  double path_delay(int a, int b, uint64_t payload, uint64_t index) const;
  double burst_delay(int a, int b, uint64_t payload, uint64_t index);

  // The host's NIC share of RANK (+infinity without a host cap).
  double host_egress(int rank) const;
  double host_ingress(int rank) const;

  Profile profile_;
  int world_;
  std::vector<int> host_, host_size_;  // rank -> host; host -> ranks placed on it
  std::vector<NicQueue> egress_, ingress_;  // per rank
  std::vector<double> path_free_, path_last_arrival_;  // per ordered pair a*world+b
  std::vector<uint64_t> path_messages_;  // per ordered pair: message counter for jitter/loss draws
  std::vector<BurstChain> path_burst_;   // per ordered pair, with bursty loss only
};

}  // namespace dtb::netem
