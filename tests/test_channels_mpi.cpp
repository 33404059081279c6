// A rank's two communication channels on the trainer's virtual clock (parallel/timeline.hpp,
// netem/clock.hpp), on 3 ranks: rank 0 launches a DP bucket (a ring allreduce with rank 1
// on the DP communicator) and then sends a pipeline activation to rank 2. The send runs on
// the TP/PP channel beside the bucket and arrives one message after it was posted, as
// the closed form says; put on the bucket's channel, it queues behind the whole bucket.
// Compute is charged by a device model that is never given FLOPs, so every time is exact.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

#include <vector>

#include "algorithms.hpp"
#include "parallel/timeline.hpp"

using namespace dtb;

namespace {

constexpr double kL = 0.01, kR = 1.25e8;  // 10 ms, 1 Gbps on every path, no NIC cap
constexpr size_t kBucketFloats = 1 << 20, kActivationBytes = 1 << 18;

Approx exactly(double v) { return Approx(v).epsilon(1e-12).margin(1e-15); }

struct Times {
  double arrival = 0;  // rank 2: when the activation was there (its blocking receive's end)
  double dp_total = 0; // rank 0: the bucket's time on the DP channel
};

// One step of the scene, the DP communicator on DP_CHANNEL.
Times scene(netem::Stream dp_channel) {
  coll::Communicator world(MPI_COMM_WORLD, netem::uniform_profile(3, kL, kR), netem::ClockKind::kVirtual);
  const int me = world.rank();
  std::optional<coll::Communicator> dp = world.split(me < 2 ? 0 : -1, me, dp_channel);
  par::Timeline tl(world, [] { return 0.0; }, 1e12, 0);
  tl.start_step(me, 0);
  std::vector<float> bucket(kBucketFloats, 1.0f);
  std::vector<std::byte> activation(kActivationBytes);
  Times t;
  if (me < 2) tl.launch([&] { coll::ring_allreduce(*dp, std::span<float>(bucket)); });
  if (me == 0) tl.post(par::Traffic::kPp, [&] { world.send(2, activation); });
  if (me == 2) t.arrival = tl.blocking(par::Traffic::kPp, [&] { world.recv(0, activation); });
  tl.join();
  t.dp_total = tl.finish_step().dp_total;
  t.arrival = world.untimed_max(t.arrival);
  t.dp_total = world.untimed_max(t.dp_total);
  return t;
}

}  // namespace

TEST_CASE("channels: a PP send does not wait behind a DP bucket on the virtual clock", "[mpi][channels]") {
  // The ring over 2 ranks: a reduce-scatter step and an allgather step, half the bucket each.
  const double step = kL + double(kBucketFloats / 2 * sizeof(float)) / kR;
  const double send = kL + double(kActivationBytes) / kR;

  const Times own = scene(netem::Stream::kDp);
  CHECK(own.dp_total == exactly(2 * step));
  CHECK(own.arrival == exactly(send));  // posted at 0, beside the bucket

  // The bucket on the TP/PP channel (one channel per rank, as before): the send waits for it.
  const Times shared = scene(netem::Stream::kComm);
  CHECK(shared.arrival == exactly(2 * step + send));
}

int main(int argc, char** argv) {
  coll::MpiSession mpi(&argc, &argv);
  const int failed = Catch::Session().run(argc, argv);
  int worst = 0;
  MPI_Allreduce(&failed, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst ? 1 : 0;
}
