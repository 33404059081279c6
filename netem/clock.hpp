#pragma once
// Two clocks behind one interface (see docs/ARCHITECTURE.md, "Time: two clocks, three streams").
//
// A rank has three streams: compute, and two communication channels, as real trainers run
// the data-parallel gradient sync on a communicator and stream of its own beside TP and PP
// (Megatron-LM, DeepSpeed): kComm carries TP allreduces, PP sends and receives and every
// other collective; kDp the DP gradient buckets (and ZeRO's parameter allgather). Each
// channel is FIFO in itself; the two share the rank's NIC (NetworkModel).
//
// Virtual: each rank keeps a logical time per stream. Compute advances it by measured
// thread CPU time or by a device model; a receive moves the receiving stream to
// max(its time, arrival). Deterministic and immune to a noisy or oversubscribed host.
// Wall: the same arrival times are enforced for real: wait_until() sleeps until the
// time comes. now() is the real time since a common epoch (set after a barrier).
#include <chrono>
#include <memory>

namespace dtb::netem {

enum class ClockKind { kVirtual, kWall };
enum class Stream { kCompute = 0, kComm = 1, kDp = 2 };
constexpr int kNumStreams = 3;
constexpr int kNumChannels = 2;  // the communication streams: kComm, kDp
// A communication stream's index among the channels (0 = kComm, 1 = kDp).
constexpr int channel_index(Stream s) { return s == Stream::kDp ? 1 : 0; }

class Clock {
 public:
  virtual ~Clock() = default;
  virtual ClockKind kind() const = 0;
  // Seconds since the epoch on stream S.
  virtual double now(Stream s) const = 0;
  // Virtual: the stream moves to max(now, t). Wall: sleeps until the epoch + t.
  virtual void wait_until(Stream s, double t) = 0;
  // Virtual: the stream moves forward by SECONDS of modelled work. Wall: nothing (the work
  // already took real time).
  virtual void advance(Stream s, double seconds) = 0;
};

class VirtualClock final : public Clock {
 public:
  ClockKind kind() const override { return ClockKind::kVirtual; }
  double now(Stream s) const override { return time_[int(s)]; }
  void wait_until(Stream s, double t) override;
  void advance(Stream s, double seconds) override { time_[int(s)] += seconds; }

 private:
  double time_[kNumStreams] = {0, 0, 0};
};

class WallClock final : public Clock {
 public:
  using Instant = std::chrono::steady_clock::time_point;
  explicit WallClock(Instant epoch = std::chrono::steady_clock::now()) : epoch_(epoch) {}
  void set_epoch(Instant epoch) { epoch_ = epoch; }
  ClockKind kind() const override { return ClockKind::kWall; }
  double now(Stream) const override;
  void wait_until(Stream s, double t) override;
  void advance(Stream, double) override {}

 private:
  Instant epoch_;
};

std::unique_ptr<Clock> make_clock(ClockKind kind);

// CPU time consumed by the calling thread, in seconds (what virtual compute is charged).
double thread_cpu_seconds();

}  // namespace dtb::netem
