// Binomial trees (MPICH's reduce and broadcast): ceil(log2 p) rounds, each moving the
// whole buffer over one link. Ranks are taken relative to the root (vrank = rank - root
// mod p); in round k a vrank with bit k set sends to vrank - 2^k, the others receive from
// vrank + 2^k. A vrank is popcount(vrank) hops from the root, so the tree is floor(log2 p)
// deep, and as netem gives every rank pair its own path, a parent's transfers with its
// children overlap: without NIC caps the depth, not the round count, sets the time,
//   broadcast = floor(log2 p) (alpha + n beta),  allreduce = 2 floor(log2 p) (alpha + n beta).
// With NIC caps a parent's sends queue at its egress (children largest subtree first) and
// its receives at its ingress (in round order); the cost functions then walk the tree
// with netem's rules, which for p = 2^d still gives the closed form. Few messages, so
// good for small buffers, but every hop carries all n bytes.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

int ceil_log2(int p) {
  int k = 0;
  while ((1 << k) < p) ++k;
  return k;
}

int floor_log2(int p) {
  int k = 0;
  while ((2 << k) <= p) ++k;
  return k;
}

namespace {

struct TreeLinks {
  double n, alpha, beta, beta_egress, beta_ingress;
  double upstream() const { return n * std::max(beta, beta_egress); }  // last byte leaves the path
  // When a message that entered the sender's egress at START, behind QUEUED bytes there,
  // has been received (netem: path cut-through behind the egress, then the ingress).
  double received(double start, double queued) const {
    const double first = start + queued * beta_egress + alpha;
    const double arrival = std::max(start + (queued + n) * beta_egress, start + queued * beta_egress + n * beta) + alpha;
    return std::max(arrival, first + n * beta_ingress);
  }
};

// When every rank of vrank V's subtree holds the broadcast, V having it at time T.
double broadcast_done(int v, int p, double t, const TreeLinks& l) {
  int mask = 1;
  while (mask < p && !(v & mask)) mask <<= 1;
  double done = t, queued = 0;
  for (mask >>= 1; mask > 0; mask >>= 1) {
    if (v + mask >= p) continue;
    done = std::max(done, broadcast_done(v + mask, p, l.received(t, queued), l));
    queued += l.n;
  }
  return done;
}

// When vrank V holds its subtree's sum (children in round order through its ingress).
double reduce_done(int v, int p, const TreeLinks& l) {
  double done = 0, ingress_free = 0;
  for (int mask = 1; mask < p && !(v & mask); mask <<= 1) {
    if (v + mask >= p) continue;
    const double sent = reduce_done(v + mask, p, l);
    const double arrival = sent + l.upstream() + l.alpha;
    const double got = std::max(arrival, std::max(ingress_free, sent + l.alpha) + l.n * l.beta_ingress);
    ingress_free = got;
    done = std::max(done, got);
  }
  return done;
}

}  // namespace

double tree_broadcast_cost(int p, double n, double alpha, double beta, double beta_egress, double beta_ingress) {
  return p <= 1 ? 0.0 : broadcast_done(0, p, 0.0, {n, alpha, beta, beta_egress, beta_ingress});
}

double tree_allreduce_cost(int p, double n, double alpha, double beta, double beta_egress, double beta_ingress) {
  if (p <= 1) return 0.0;
  const TreeLinks l{n, alpha, beta, beta_egress, beta_ingress};
  return broadcast_done(0, p, reduce_done(0, p, l), l);
}

// Level by level, as tree_reduce and tree_broadcast_bytes run: in the reduce's round MASK
// every vrank whose lowest set bit is MASK sends its subtree's sum to vrank - MASK; in the
// broadcast's round MASK (largest first) every vrank that holds the buffer and has no bit
// below 2 MASK sends it to vrank + MASK. A parent's sends queue at its egress NIC, its
// receives at its ingress, each over its own link.
void tree_reduce_rounds(int p, double n, int root, const RoundSink& emit) {
  std::vector<Message> round;
  for (int mask = 1; mask < p; mask <<= 1) {
    round.clear();
    for (int v = mask; v < p; v += 2 * mask) round.push_back({(v + root) % p, (v - mask + root) % p, n});
    emit(round);
  }
}

void tree_broadcast_rounds(int p, double n, int root, const RoundSink& emit) {
  std::vector<Message> round;
  for (int mask = p > 1 ? 1 << (ceil_log2(p) - 1) : 0; mask > 0; mask >>= 1) {
    round.clear();
    for (int v = 0; v + mask < p; v += 2 * mask) round.push_back({(v + root) % p, (v + mask + root) % p, n});
    emit(round);
  }
}

void tree_allreduce_rounds(int p, double n, const RoundSink& emit) {
  tree_reduce_rounds(p, n, 0, emit);
  tree_broadcast_rounds(p, n, 0, emit);
}

double tree_broadcast_model(const Net& net, std::span<const int> ranks, double n, int root) {
  return replay(net, ranks, [&](const RoundSink& emit) { tree_broadcast_rounds(int(ranks.size()), n, root, emit); });
}

double tree_allreduce_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks, [&](const RoundSink& emit) { tree_allreduce_rounds(int(ranks.size()), n, emit); });
}

namespace detail {

void tree_reduce(Communicator& comm, FloatWire& wire, int root) {
  const int p = comm.size(), v = mod(comm.rank() - root, p);
  const Range all{0, wire.count()};
  for (int mask = 1; mask < p; mask <<= 1) {
    if (v & mask) {  // send the partial sum of this subtree to the parent; done
      comm.send(mod(v - mask + root, p), wire.encode_partial(all, 0));
      return;
    }
    if (v + mask < p) {
      comm.recv(mod(v + mask + root, p), wire.partial_buffer(all, 1));
      wire.add_partial(all, 1);
    }
  }
}

void tree_broadcast_bytes(Communicator& comm, std::span<std::byte> bytes, int root) {
  const int p = comm.size(), v = mod(comm.rank() - root, p);
  int mask = 1;
  for (; mask < p; mask <<= 1) {
    if (v & mask) {
      comm.recv(mod(v - mask + root, p), bytes);
      break;
    }
  }
  for (mask >>= 1; mask > 0; mask >>= 1)  // largest subtree first
    if (v + mask < p) comm.send(mod(v + mask + root, p), bytes);
}

}  // namespace detail

namespace {
// ROOT finalizes the whole buffer as one block; its wire form goes down the tree.
void broadcast_final(Communicator& comm, FloatWire& wire, int root) {
  wire.set_blocks(1);
  if (comm.rank() == root) wire.finalize(0);
  detail::tree_broadcast_bytes(comm, wire.block_bytes(0, 1), root);
  if (comm.rank() != root) wire.decode_blocks(0, 1);
}
}  // namespace

void tree_broadcast(Communicator& comm, std::span<float> data, int root, Compression c) {
  if (root < 0 || root >= comm.size())
    throw std::invalid_argument("tree_broadcast: root " + std::to_string(root) + " is not a rank");
  if (comm.size() == 1) return;
  FloatWire wire(comm, data, c);
  broadcast_final(comm, wire, root);
}

void tree_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
  FloatWire wire(comm, data, c);
  detail::tree_reduce(comm, wire, 0);
  broadcast_final(comm, wire, 0);
}

}  // namespace dtb::coll
