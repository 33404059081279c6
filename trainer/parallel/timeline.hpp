#pragma once
// Where one rank's step goes, on the clock of its Communicator (docs/ARCHITECTURE.md, "Time: two clocks, three streams").
//
// Compute is charged in segments: every call that ends one (charge(), and each
// communication, which charges first) adds the work since the previous mark to the current
// phase and advances the compute stream by it: the thread CPU time of the segment, or,
// with a device model, the FLOPs the stage issued in it / (peak x efficiency), plus the
// bytes of memory-bound work (AdamW, charge_memory()) / the device's memory bandwidth
// (the optimizer issues no FLOPs; without a bandwidth it is free). Measured CPU time
// needs one kernel thread per rank (the thread's CPU time is then all of the work;
// rank_threads in parallel_trainer.cpp enforces it); a rank alone on the wall clock may
// use every core, since the wall clock does not read CPU time.
//
// Communication runs on two channels of the rank (netem/clock.hpp), each FIFO, sharing
// the rank's NIC: the DP channel (Stream::kDp: traffic kDp, on the DP communicator, which
// the trainer splits onto that channel) and the TP/PP channel (Stream::kComm: the rest).
// So a PP send never queues behind a DP bucket, as with Megatron-LM's separate DP
// communicator and stream.
//   blocking()  TP allreduces, PP receives, the norm: start when compute gets there,
//               compute waits for the result; the wait is returned.
//   post()      PP sends: start when compute gets there, compute goes on.
//   launch()    a DP bucket on the DP channel: the same, and its time there counts as DP total.
//   join()      compute waits for the DP channel: the DP time not hidden (exposed).
// Wall clock: the same calls on real time. DP buckets run on a comm thread (CommWorker,
// needs MPI_THREAD_MULTIPLE) while the backward goes on: DP total is the time the thread
// spent in them, exposed the time join() waited. Without MPI_THREAD_MULTIPLE they run
// synchronously (exposed = total). The comm thread's CPU time counts as "CPU in comm".
#include <functional>
#include <memory>

#include "communicator.hpp"
#include "parallel/comm_worker.hpp"
#include "train/results.hpp"

namespace dtb::par {

enum class Phase { kForward, kBackward, kOptimizer, kHarness };
enum class Traffic { kTp, kPp, kDp, kOther };

class Timeline {
 public:
  // FLOPS: the FLOPs the rank's kernels have issued so far; DEVICE_FLOPS_PER_S > 0 selects
  // the device model, 0 the measured thread CPU time. DEVICE_BYTES_PER_S: the device
  // model's memory bandwidth (0 = memory-bound work is free).
  Timeline(coll::Communicator& comm, std::function<double()> flops, double device_flops_per_s,
           double device_bytes_per_s);
  ~Timeline();

  // A straggler (faults.slowdown): every compute segment takes FACTOR times as long, on the
  // virtual clock by charging it, on the wall clock by sleeping the difference.
  void set_slowdown(double factor) { slowdown_ = factor; }

  void start_step(int64_t rank, int64_t step);
  void set_phase(Phase p);
  void charge();  // ends the current compute segment
  // Device model: BYTES of memory-bound work in the current phase (no-op on measured time,
  // which has already counted it).
  void charge_memory(double bytes);

  double blocking(Traffic t, const std::function<void()>& fn);
  void post(Traffic t, const std::function<void()>& fn);
  void launch(const std::function<void()>& fn);
  void join();
  // Runs FN, work between two steps (validation; collective), outside the steps' time, so
  // that the step times do not depend on train.val_every. On the virtual clock every rank
  // resumes when the last is done, and a DP sync in flight (a Streaming DiLoCo
  // fragment's, launched in the last step) pauses while FN runs: validating does not hide
  // part of a sync that a run without validation waits for. (Wall clock: real time.)
  void outside_steps(const std::function<void()>& fn);

  RankStepRecord& record() { return r_; }
  const RankStepRecord& finish_step();  // the step's record, idle = what is left
  bool wall() const { return comm_.clock().kind() == netem::ClockKind::kWall; }
  bool comm_thread() const { return worker_ != nullptr; }  // wall clock with MPI_THREAD_MULTIPLE

 private:
  double compute_now() const { return comm_.clock().now(netem::Stream::kCompute); }
  double now(netem::Stream s) const { return comm_.clock().now(s); }
  // The channel traffic of kind T runs on.
  static netem::Stream channel(Traffic t) { return t == Traffic::kDp ? netem::Stream::kDp : netem::Stream::kComm; }
  // Runs FN as communication of kind T: bytes and CPU time go to T, not to compute.
  void run_comm(Traffic t, const std::function<void()>& fn);
  void mark();
  double& phase_time();  // the record's slot of the current phase

  coll::Communicator& comm_;
  std::function<double()> flops_;
  double device_rate_, device_bandwidth_;
  double slowdown_ = 1;
  void charge_seconds(double seconds, double real_seconds);
  Phase phase_ = Phase::kHarness;
  double mark_cpu_ = 0, mark_flops_ = 0, step_start_ = 0;
  coll::LinkStats stats_at_start_;
  RankStepRecord r_;
  std::unique_ptr<CommWorker> worker_;  // wall clock: the DP buckets' thread
};

}  // namespace dtb::par
