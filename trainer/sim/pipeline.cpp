#include "sim/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>


namespace dtb::sim {
namespace {

constexpr double kNotYet = std::numeric_limits<double>::quiet_NaN();

// A rank's egress NIC, shared by its two channels (netem's NicQueue, its channel indices).
const int kCommChannel = netem::channel_index(netem::Stream::kComm);
const int kDpChannel = netem::channel_index(netem::Stream::kDp);

// A boundary in one direction: FIFO, netem's rule for one path. Where the sender's NIC cap
// binds, the message first takes its time on that NIC (SENDER), from the gaps the DP
// buckets left there on: depart = max(NIC done, max(path free, NIC start) + serialize).
struct Link {
  Hop hop;
  double free = 0;
  double send(double ready, netem::NicQueue& sender) {
    if (hop.nic <= 0) {
      free = std::max(free, ready) + hop.serialize;
    } else {
      const netem::NicQueue::Booking b = sender.book(kCommChannel, ready, hop.nic);
      free = std::max(b.end, std::max(free, b.start) + hop.serialize);
    }
    return free + hop.latency;
  }
};

// One stage's representative rank: its compute stream, its two channels (TP/PP: comm;
// DP: dp) and its DP buckets.
struct Rank {
  const StageWork* work = nullptr;
  double compute = 0, comm = 0, dp = 0, busy = 0;
  size_t launched = 0;
  std::vector<double> bucket_start;  // when each launched bucket began on the DP channel
  netem::NicQueue nic;               // its egress NIC (capped messages only)

  double both() const { return std::max(compute, comm); }
  double all() const { return std::max(both(), dp); }  // joined: every channel done
  void blocking(double seconds) { compute = comm = both() + seconds; }
  void receive(double arrival) { compute = comm = std::max(both(), arrival); }
  // Buckets starting at or after LO, launched behind whatever the DP channel holds.
  void launch(double lo) {
    for (; launched < work->buckets.size() && work->buckets[launched].offset >= lo; ++launched) {
      const Bucket& b = work->buckets[launched];
      const double start = std::max(dp, compute);
      bucket_start.push_back(start);
      dp = std::max(start + b.cost + book_nic(b, start), b.until);
      busy += dp - start;
    }
  }
  // Books bucket B's messages (their NIC use from START on) on the DP channel, each no
  // earlier than the one before it ended; returns how much later the last one ends than on
  // a NIC of its own.
  double book_nic(const Bucket& b, double start) {
    double late = 0;
    for (const coll::NicBusy& m : b.nic) {
      const double end = nic.book(kDpChannel, start + m.start + late, m.end - m.start).end;
      late = std::max(late, end - (start + m.end));
    }
    return late;
  }
  void run(const std::vector<Piece>& pass, bool last_backward) {
    for (const Piece& p : pass) {
      compute += p.compute;
      if (p.allreduce > 0) blocking(p.allreduce);
      if (last_backward && p.ready >= 0) launch(p.ready);
    }
  }
};

struct State {
  std::vector<Rank> ranks;
  std::vector<Link> fwd, bwd;
  // act[s][i]: when micro-batch i's activation is at stage s; grad[s][i]: its gradient.
  std::vector<std::vector<double>> act, grad;
  std::vector<double> done_f;  // the last stage's forwards, for its backwards
};

// Runs OP on stage S if its input is there; false when it must wait.
bool run_op(const PipelineInput& in, State& st, int s, const par::Action& op) {
  const int pp = int(in.stages.size());
  const bool last = s == pp - 1;
  Rank& r = st.ranks[size_t(s)];
  const size_t i = size_t(op.microbatch);
  if (op.pass == par::Pass::kForward) {
    if (s > 0 && std::isnan(st.act[size_t(s)][i])) return false;
    if (s > 0) r.receive(st.act[size_t(s)][i]);
    r.run(r.work->fwd, false);
    if (last) st.done_f[i] = r.compute;
    else st.act[size_t(s + 1)][i] = st.fwd[size_t(s)].send(r.both(), r.nic);
    return true;
  }
  if (std::isnan(last ? st.done_f[i] : st.grad[size_t(s)][i])) return false;
  if (!last) r.receive(st.grad[size_t(s)][i]);
  r.run(r.work->bwd, op.microbatch == in.microbatches - 1);
  if (s > 0) st.grad[size_t(s - 1)][i] = st.bwd[size_t(s - 1)].send(r.both(), r.nic);
  return true;
}

// After the last operation: the tied embedding (each end when it is done), the rest of the
// buckets, the join.
void finish(State& st, const TiedSync& tied, PipelineTimes& out) {
  const size_t pp = st.ranks.size();
  Rank &first = st.ranks.front(), &last = st.ranks.back();
  if (pp > 1 && tied) {
    const auto [first_done, last_done] = tied(first.both(), last.both(), first.nic, last.nic);
    first.compute = first.comm = first_done;
    last.compute = last.comm = last_done;
  }
  for (Rank& r : st.ranks) {
    r.launch(-std::numeric_limits<double>::infinity());
    out.done.push_back(r.all());
    out.dp_busy.push_back(r.busy);
    out.bucket_start.push_back(r.bucket_start);
  }
}

}  // namespace

double StageWork::work() const {
  double t = 0;
  for (const auto* pass : {&fwd, &bwd})
    for (const Piece& p : *pass) t += p.compute + p.allreduce;
  return t;
}

double PipelineTimes::sync_end() const { return done.empty() ? end : *std::max_element(done.begin(), done.end()); }

PipelineTimes run_pipeline(const PipelineInput& in) {
  const int pp = int(in.stages.size()), m = in.microbatches;
  State st;
  for (const StageWork& w : in.stages) st.ranks.push_back({&w, w.start, w.start, w.start, 0, 0, {}, {}});
  st.act.assign(size_t(pp), std::vector<double>(size_t(m), kNotYet));
  st.grad = st.act;
  st.done_f.assign(size_t(m), kNotYet);
  st.fwd.resize(size_t(std::max(pp - 1, 0)));
  st.bwd = st.fwd;
  for (int s = 0; s + 1 < pp; ++s) st.fwd[size_t(s)].hop = in.forward[size_t(s)], st.bwd[size_t(s)].hop = in.backward[size_t(s)];
  std::vector<std::vector<par::Action>> order(static_cast<size_t>(pp));
  for (int s = 0; s < pp; ++s) order[size_t(s)] = par::pipeline_schedule(in.schedule, s, pp, m);
  std::vector<size_t> next(size_t(pp), 0);

  // Sweep the stages, running every operation whose input is there, until all have run.
  // Each sweep runs at least one operation (the schedules cannot deadlock).
  for (size_t remaining = size_t(2 * m * pp); remaining > 0;) {
    size_t ran = 0;
    for (int s = 0; s < pp; ++s)
      for (; next[size_t(s)] < order[size_t(s)].size() && run_op(in, st, s, order[size_t(s)][next[size_t(s)]]);
           ++next[size_t(s)])
        ++ran;
    if (ran == 0) throw std::logic_error("run_pipeline: the schedule deadlocked");
    remaining -= ran;
  }
  PipelineTimes out;
  for (const Rank& r : st.ranks) out.end = std::max(out.end, r.compute);
  finish(st, in.tied, out);
  return out;
}

}  // namespace dtb::sim
