// Recursive halving-doubling (Rabenseifner 2004; Thakur, Rabenseifner & Gropp 2005):
// a reduce-scatter by recursive halving (log2 q steps exchanging n/2, n/4, ... n/q bytes
// with the partner at distance q/2, q/4, ... 1), then an allgather by recursive doubling
// (the same steps in reverse). Same bandwidth term as the ring, but 2 log2 q latency
// terms instead of 2(p-1): the better choice for medium buffers and many ranks.
// Non-powers of two: q = the largest power of two <= p, r = p - q. Of the first 2r ranks
// each even one folds its whole buffer into the odd one after it and sits out; the q
// remaining ranks run the algorithm; the odd ranks then send the result back. That costs
// one more full-buffer exchange each way (the simple fold, not Rabenseifner's half-buffer
// one: it keeps the q active ranks' blocks contiguous).
#include <cmath>
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {
namespace {

int floor_pow2(int p) { return 1 << floor_log2(p); }

// The q active ranks: odd ranks below 2r (vrank = rank / 2), and all ranks from 2r up.
int active_rank(int vrank, int extra) { return vrank < extra ? 2 * vrank + 1 : vrank + extra; }

// Recursive halving over blocks [0, q): the rank with bit MASK set keeps the upper half.
// Ends with block vrank fully reduced.
void halve(Communicator& comm, FloatWire& wire, int vrank, int q, int extra) {
  int lo = 0, hi = q;
  for (int mask = q / 2; mask >= 1; mask /= 2) {
    const int mid = (lo + hi) / 2, partner = active_rank(vrank ^ mask, extra);
    const bool upper = vrank & mask;
    const Range give = blocks_range(wire.count(), q, upper ? lo : mid, upper ? mid : hi);
    const Range keep = blocks_range(wire.count(), q, upper ? mid : lo, upper ? hi : mid);
    comm.sendrecv(partner, wire.encode_partial(give, 0), partner, wire.partial_buffer(keep, 1));
    wire.add_partial(keep, 1);
    (upper ? lo : hi) = mid;
  }
}

// Recursive doubling: exchange the finished blocks held so far with the partner at
// distance 1, 2, ... q/2; ends with all q blocks.
void double_up(Communicator& comm, FloatWire& wire, int vrank, int q, int extra) {
  wire.finalize(vrank);
  int lo = vrank, hi = vrank + 1;
  for (int mask = 1; mask < q; mask *= 2) {
    const int partner = active_rank(vrank ^ mask, extra);
    const int plo = (vrank & mask) ? lo - mask : hi, phi = plo + mask;
    comm.sendrecv(partner, wire.block_bytes(lo, hi), partner, wire.block_bytes(plo, phi));
    wire.decode_blocks(plo, phi);
    lo = std::min(lo, plo);
    hi = std::max(hi, phi);
  }
}

}  // namespace

double halving_doubling_allreduce_cost(int p, double n, double alpha, double beta) {
  if (p <= 1) return 0.0;
  const int q = floor_pow2(p);
  double t = 2 * std::log2(q) * alpha + 2.0 * (q - 1) / q * n * beta;
  if (q != p) t += 2 * (alpha + n * beta);  // fold and unfold
  return t;
}

// The fold, log2 q halving steps (n mask/q bytes with the partner at distance mask), as
// many doubling steps in reverse, and the unfold: each step costs its pairs' own links.
void halving_doubling_allreduce_rounds(int p, double n, const RoundSink& emit) {
  if (p <= 1) return;
  const int q = floor_pow2(p), extra = p - q;
  std::vector<Message> round;
  auto fold = [&](bool back) {
    round.clear();
    for (int v = 0; v < extra; ++v) round.push_back(back ? Message{2 * v + 1, 2 * v, n} : Message{2 * v, 2 * v + 1, n});
    if (!round.empty()) emit(round);
  };
  auto step = [&](int mask) {
    round.clear();
    for (int v = 0; v < q; ++v) round.push_back({active_rank(v, extra), active_rank(v ^ mask, extra), n * mask / q});
    emit(round);
  };
  fold(false);
  for (int mask = q / 2; mask >= 1; mask /= 2) step(mask);
  for (int mask = 1; mask < q; mask *= 2) step(mask);
  fold(true);
}

double halving_doubling_allreduce_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks,
                [&](const RoundSink& emit) { halving_doubling_allreduce_rounds(int(ranks.size()), n, emit); });
}

void halving_doubling_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  const int p = comm.size(), r = comm.rank();
  if (p == 1) return;
  FloatWire wire(comm, data, c);
  const int q = floor_pow2(p), extra = p - q;
  // The first 2 extra ranks pair up: the even one folds its buffer into the odd one.
  const bool sits_out = r < 2 * extra && r % 2 == 0, takes_fold = r < 2 * extra && r % 2 == 1;
  const Range all{0, data.size()};

  if (sits_out) comm.send(r + 1, wire.encode_partial(all, 0));
  if (takes_fold) {
    comm.recv(r - 1, wire.partial_buffer(all, 1));
    wire.add_partial(all, 1);
  }
  wire.set_blocks(q);
  if (!sits_out) {
    const int vrank = takes_fold ? r / 2 : r - extra;
    halve(comm, wire, vrank, q, extra);
    double_up(comm, wire, vrank, q, extra);
  }
  if (sits_out) {
    comm.recv(r + 1, wire.block_bytes(0, q));
    wire.decode_blocks(0, q);
  }
  if (takes_fold) comm.send(r - 1, wire.block_bytes(0, q));
}

}  // namespace dtb::coll
