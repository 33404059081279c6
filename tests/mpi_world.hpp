#pragma once
// What the trainer's MPI tests share: the world on the virtual clock with no network
// charge, rank 0 as the checker, and one scratch folder for all ranks (rank 0's pid) with
// the fortunes prepared once by rank 0. Needs DTB_BINARY (the dtbench under test).
// Only CHECK in these helpers, never REQUIRE (no rank may leave early).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "dtbench_runner.hpp"
#include "config.hpp"
#include "train/train_config.hpp"

namespace dtb::test {

inline coll::Communicator& mpi_world() {
  static coll::Communicator w(MPI_COMM_WORLD, netem::uniform_profile(coll::MpiSession::world_size(), 0, 0),
                              netem::ClockKind::kVirtual);
  return w;
}
inline bool mpi_root() { return mpi_world().rank() == 0; }

// The folder dtb_test_<NAME>_<pid>, created with fortunes.h5 by rank 0 while the others wait.
inline std::filesystem::path mpi_scratch(const std::string& name) {
  const int64_t pid = mpi_world().untimed_sum(mpi_root() ? int64_t(getpid()) : 0);
  const std::filesystem::path d = std::filesystem::temp_directory_path() / ("dtb_test_" + name + "_" + std::to_string(pid));
  if (mpi_root()) {
    std::filesystem::create_directories(d);
    const std::string cmd = std::string(DTB_BINARY) + " prepare --out " + (d / "fortunes.h5").string() + " >/dev/null";
    CHECK(std::system(cmd.c_str()) == 0);
  }
  mpi_world().untimed_max(0);  // a barrier
  return d;
}

// A model smaller than tiny (8-rank layouts stay fast on 2 cores) on DIR's fortunes, STEPS
// steps, then SETS.
inline Config small_train_config(const std::filesystem::path& dir, int steps, const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"data.path=" + (dir / "fortunes.h5").string(),
                                  "train.results=" + (dir / "results.h5").string(),
                                  "model.n_layer=2", "model.n_embd=32", "model.n_head=4", "model.n_ctx=16",
                                  "model.vocab_size=256", "train.seq_len=16", "train.batch_size=8",
                                  "train.steps=" + std::to_string(steps), "train.val_every=0", "train.threads=1",
                                  "optim.lr=0.01"};
  all.insert(all.end(), sets.begin(), sets.end());
  return load_config(train_schema(), {}, all);
}

// The --set lines of a DP x PP x TP layout with M micro-batches.
inline std::vector<std::string> layout_sets(int dp, int pp, int tp, int m, const std::string& schedule = "1f1b") {
  return {"parallel.dp=" + std::to_string(dp), "parallel.pp=" + std::to_string(pp),
          "parallel.tp=" + std::to_string(tp), "parallel.microbatches=" + std::to_string(m),
          "parallel.schedule=" + schedule};
}

}  // namespace dtb::test
