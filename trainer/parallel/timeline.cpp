#include "parallel/timeline.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include "clock.hpp"

namespace dtb::par {

using netem::Stream;

Timeline::Timeline(coll::Communicator& comm, std::function<double()> flops, double device_flops_per_s,
                   double device_bytes_per_s)
    : comm_(comm), flops_(std::move(flops)), device_rate_(device_flops_per_s), device_bandwidth_(device_bytes_per_s) {
  if (wall() && coll::MpiSession::thread_multiple()) worker_ = std::make_unique<CommWorker>();
}

Timeline::~Timeline() = default;

void Timeline::mark() {
  mark_cpu_ = netem::thread_cpu_seconds();
  mark_flops_ = flops_();
}

void Timeline::start_step(int64_t rank, int64_t step) {
  r_ = RankStepRecord{};
  r_.rank = rank;
  r_.step = step;
  phase_ = Phase::kHarness;
  stats_at_start_ = comm_.stats();
  step_start_ = compute_now();
  mark();
}

void Timeline::set_phase(Phase p) {
  charge();
  phase_ = p;
}

double& Timeline::phase_time() {
  double* slot[] = {&r_.forward, &r_.backward, &r_.optimizer, &r_.harness};
  return *slot[int(phase_)];
}

void Timeline::charge() {
  const double cpu = netem::thread_cpu_seconds() - mark_cpu_;
  const double seconds = device_rate_ > 0 ? (flops_() - mark_flops_) / device_rate_ : cpu;
  if (phase_ != Phase::kHarness) r_.kernel_cpu += cpu;
  charge_seconds(seconds, cpu);
  mark();
}

// SECONDS of compute on the clock; REAL_SECONDS of it took real time on this machine (the
// wall clock's share when this rank is a straggler).
void Timeline::charge_seconds(double seconds, double real_seconds) {
  phase_time() += seconds * slowdown_;
  comm_.clock().advance(Stream::kCompute, seconds * slowdown_);
  if (slowdown_ != 1 && wall() && real_seconds > 0)
    std::this_thread::sleep_for(std::chrono::duration<double>((slowdown_ - 1) * real_seconds));
}

void Timeline::charge_memory(double bytes) {
  charge();
  if (device_rate_ <= 0 || device_bandwidth_ <= 0) return;
  charge_seconds(bytes / device_bandwidth_, 0);  // modelled time only: nothing ran for it
}

void Timeline::run_comm(Traffic t, const std::function<void()>& fn) {
  // This thread's bytes only: a comm thread may be sending DP buckets meanwhile.
  const coll::LinkStats before = coll::Communicator::thread_stats();
  const double cpu = netem::thread_cpu_seconds();
  fn();
  r_.comm_cpu += netem::thread_cpu_seconds() - cpu;
  const coll::LinkStats& after = coll::Communicator::thread_stats();
  const uint64_t bytes = (after.bytes_intra + after.bytes_inter) - (before.bytes_intra + before.bytes_inter);
  uint64_t* slot[] = {&r_.bytes_tp, &r_.bytes_pp, &r_.bytes_dp, &r_.bytes_other};
  *slot[int(t)] += bytes;
  mark();  // the communication's own CPU time is not compute
}

double Timeline::blocking(Traffic t, const std::function<void()>& fn) {
  charge();
  const double t0 = compute_now();
  comm_.clock().wait_until(channel(t), t0);
  run_comm(t, fn);
  comm_.clock().wait_until(Stream::kCompute, now(channel(t)));
  return compute_now() - t0;
}

void Timeline::post(Traffic t, const std::function<void()>& fn) {
  charge();
  comm_.clock().wait_until(channel(t), compute_now());
  run_comm(t, fn);
}

void Timeline::launch(const std::function<void()>& fn) {
  charge();
  if (worker_) return worker_->launch(fn);  // wall clock: the comm thread runs it
  comm_.clock().wait_until(Stream::kDp, compute_now());
  const double c0 = now(Stream::kDp);
  run_comm(Traffic::kDp, fn);
  r_.dp_total += now(Stream::kDp) - c0;
  if (wall()) r_.dp_exposed += now(Stream::kDp) - c0;  // synchronous (no comm thread): nothing hidden
}

void Timeline::join() {
  charge();
  const double t0 = compute_now();
  if (worker_) {
    const CommWorker::Done d = worker_->join();
    r_.dp_total += d.busy_seconds;
    r_.dp_exposed += compute_now() - t0;
    r_.bytes_dp += d.bytes;
    r_.comm_cpu += d.cpu_seconds;
    return mark();
  }
  comm_.clock().wait_until(Stream::kCompute, now(Stream::kDp));
  if (!wall()) r_.dp_exposed += compute_now() - t0;
}

// FN's compute is charged as it ends its segments (its last one: a blocking sum), as
// before this wrapper: nothing is charged here.
void Timeline::outside_steps(const std::function<void()>& fn) {
  const double t0 = compute_now();
  const bool in_flight = now(Stream::kDp) > t0;
  fn();
  if (wall()) return;
  // Every rank resumes when the last is done: the root of validation's loss sum is done two
  // latencies before the others, a skew the next collective would absorb into a step.
  const double end = comm_.untimed_max(compute_now());
  comm_.clock().wait_until(Stream::kCompute, end);
  // What was left of the sync at t0 resumes after FN: its end moves by FN's time.
  if (in_flight) comm_.clock().advance(Stream::kDp, end - t0);
}

const RankStepRecord& Timeline::finish_step() {
  charge();
  r_.step_time = compute_now() - step_start_;
  const double accounted = r_.forward + r_.backward + r_.optimizer + r_.harness + r_.tp_comm + r_.pp_comm +
                           r_.bubble + r_.dp_exposed + r_.other_comm;
  r_.idle = std::max(0.0, r_.step_time - accounted);
  const coll::LinkStats& s = comm_.stats();
  r_.bytes_intra = s.bytes_intra - stats_at_start_.bytes_intra;
  r_.bytes_inter = s.bytes_inter - stats_at_start_.bytes_inter;
  return r_;
}

}  // namespace dtb::par
