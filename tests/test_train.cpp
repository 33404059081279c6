// The trainer on a world of one, started as dtbench starts it without a launcher: MPI as a
// singleton (no mpirun), the same ParallelTrainer as N ranks. Against independent
// references: GPT<float> with its own few-line loop (bitwise), ln(V) at initialisation, a
// memorised batch, the unigram entropy of the corpus, and an uninterrupted run (resume).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset.hpp"
#include "optim/adamw.hpp"
#include "parallel/parallel_trainer.hpp"
#include "train/checkpoint.hpp"
#include "train_reference.hpp"
#include "dtbench_runner.hpp"
#include "usage_error.hpp"

namespace fs = std::filesystem;

namespace {

// MPI_COMM_WORLD of this process alone, unshaped, on the wall clock as dtbench runs one rank.
dtb::coll::Communicator& world() {
  static dtb::coll::Communicator w(MPI_COMM_WORLD, dtb::netem::uniform_profile(1, 0, 0), dtb::netem::ClockKind::kWall);
  return w;
}

// Elements whose bits differ (a CHECK on the vectors themselves would print all of them).
size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

struct Trainer : dtb::par::ParallelTrainer {
  Trainer(const dtb::Config& c, std::ostream& log) : ParallelTrainer(c, world(), log) {}
};

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_train");
  return dir;
}

// The default corpus (Debian's fortunes), prepared once by the real command.
std::string fortunes() {
  static const std::string path = dtb::test::prepared_fortunes(scratch());
  return path;
}

// One kernel thread: ctest runs two tests at once on two cores, and OpenMP threads that
// spin against another process's threads slow both down severalfold.
dtb::Config tiny(const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"data.path=" + fortunes(),
                                  "train.results=" + (scratch() / "results.h5").string(),
                                  "train.threads=1"};
  all.insert(all.end(), sets.begin(), sets.end());
  return dtb::load_config(dtb::train_schema(), {std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml"}, all);
}

}  // namespace

// The norm is summed in the stage's layer-major order, GPT's loop in its tensor-major one:
// the same sum up to double rounding, far below what float clipping factors can see.
TEST_CASE("a world of one trains bitwise what GPT<float> trains", "[train]") {
  const dtb::Config config = tiny({"train.steps=25", "train.val_every=0"});
  const dtb::test::Reference want = dtb::test::reference_run(config);
  std::ostringstream log;
  Trainer trainer(config, log);
  const auto& steps = trainer.run("test").steps;
  REQUIRE(steps.size() == want.losses.size());
  int clipped = 0;
  for (size_t i = 0; i < steps.size(); ++i) {
    INFO("step " << i << ": loss " << steps[i].loss << " vs " << want.losses[i] << ", norm " << steps[i].grad_norm
                 << " vs " << want.norms[i]);
    CHECK(std::memcmp(&steps[i].loss, &want.losses[i], sizeof(double)) == 0);
    CHECK(std::abs(steps[i].grad_norm - want.norms[i]) <= 1e-14 * want.norms[i]);
    clipped += want.norms[i] > 1.0;
  }
  CHECK(clipped > 5);  // clipping on the norm was exercised (optim.grad_clip = 1)
  CHECK(differing(trainer.gather_params(), want.params) == 0);
}

// The loop as device.backend=cuda runs it (a Backend behind BackendStage), on the CPU:
// a GPT<float> Backend trains, validates, checkpoints and resumes bitwise as the CPU stage.
TEST_CASE("through BackendStage, a world of one trains, validates and resumes as the CPU stage", "[train]") {
  const std::string ckpt = (scratch() / "backend.h5").string();
  const dtb::Config config = tiny({"train.steps=12", "train.val_every=6", "train.val_batches=2",
                                   "train.checkpoint=" + ckpt, "train.checkpoint_every=6"});
  const auto backend = [](const dtb::TrainSettings& s, const dtb::par::StageShard&, int, int) {
    return dtb::par::make_backend_stage(std::make_unique<dtb::test::GptBackend>(s), s);
  };
  std::ostringstream log;
  Trainer cpu(config, log);
  const dtb::TrainRunSummary want = cpu.run("cpu");
  dtb::par::ParallelTrainer device(config, world(), log, backend);
  const dtb::TrainRunSummary got = device.run("backend");
  REQUIRE(got.steps.size() == want.steps.size());
  for (size_t i = 0; i < got.steps.size(); ++i) {
    INFO("step " << i);
    CHECK(std::memcmp(&got.steps[i].loss, &want.steps[i].loss, sizeof(double)) == 0);
    CHECK(std::abs(got.steps[i].grad_norm - want.steps[i].grad_norm) <= 1e-14 * want.steps[i].grad_norm);
  }
  REQUIRE(got.val.size() == 2);
  CHECK(got.val[0].loss == want.val[0].loss);
  CHECK(got.val[1].loss == want.val[1].loss);
  CHECK(differing(device.gather_params(), cpu.gather_params()) == 0);
  // The CPU stage's checkpoint continues through the Backend (set_state), as a GPU resumes it.
  dtb::par::ParallelTrainer resumed(tiny({"train.steps=12", "train.val_every=0"}), world(), log, backend);
  resumed.resume(dtb::periodic_checkpoint_path(ckpt, 6));
  const auto& rest = resumed.run("resumed").steps;
  REQUIRE(rest.size() == 6);
  for (size_t i = 0; i < rest.size(); ++i) CHECK(rest[i].loss == want.steps[6 + i].loss);
  CHECK(differing(resumed.gather_params(), cpu.gather_params()) == 0);
}

TEST_CASE("loss at initialisation is close to ln(V)", "[train]") {
  std::ostringstream log;
  Trainer trainer(tiny({}), log);
  const double loss = trainer.validate();
  INFO("val loss at init " << loss << ", ln(256) = " << std::log(256.0));
  CHECK(std::abs(loss - std::log(256.0)) < 0.1);
}

TEST_CASE("a single batch is memorised: loss under 0.1 within 300 steps", "[train]") {
  dtb::Config config = tiny({});
  dtb::TrainSettings s = dtb::train_settings(config);
  dtb::set_num_threads(1);
  dtb::TokenSplit split(s.data_path, "train", s.model.vocab_size, s.seq_len);
  dtb::GPT<float> model(s.model, s.batch_size, s.seq_len);
  model.init_weights(s.seed);
  const size_t n = model.num_params();
  std::vector<float> m(n), v(n);
  std::vector<int32_t> in(size_t(s.batch_size) * s.seq_len), tg(in.size());
  split.batch(s.seed, 0, s.batch_size, s.seq_len, 0, 1, in.data(), tg.data());
  std::vector<dtb::ParamSegment> all{{0, n, false}};
  s.optim.lr = 3e-3;
  double loss = 0;
  int step = 0;
  for (; step < 300; ++step) {
    loss = model.forward(in.data(), tg.data());
    if (loss < 0.1) break;
    model.zero_grad();
    model.backward();
    dtb::adamw_update(model.params(), model.grads(), m.data(), v.data(), all, s.optim, 3e-3,
                      step + 1, 1.0);
  }
  INFO("loss " << loss << " after " << step << " steps");
  CHECK(loss < 0.1);
}

TEST_CASE("training on fortunes falls well below the unigram entropy", "[train]") {
  std::ostringstream log;
  Trainer trainer(tiny({"train.steps=300", "train.val_every=300"}), log);
  const auto& run = trainer.run("test");
  dtb::TokenSplit val(fortunes(), "val", 256, 64);
  const double unigram = dtb::unigram_entropy(val);
  const double final_val = run.val.back().loss;
  INFO("unigram entropy " << unigram << " nats, val loss after 300 steps " << final_val);
  CHECK(final_val < unigram - 0.5);
  CHECK(run.steps.size() == 300);
}

TEST_CASE("a resumed run equals, bit for bit, a run that never stopped", "[train]") {
  // Tied (GPT-2) and untied (the checkpoint holds lm_head and says so) embeddings.
  const std::string tie = GENERATE(std::string("true"), std::string("false"));
  const std::string ckpt = (scratch() / ("resume-" + tie + ".h5")).string();
  std::ostringstream log;
  Trainer straight(tiny({"train.steps=20", "train.val_every=0", "train.checkpoint=" + ckpt,
                              "train.checkpoint_every=10", "model.tie_embeddings=" + tie}), log);
  const auto losses = straight.run("test").steps;
  REQUIRE(losses.size() == 20);

  Trainer resumed(tiny({"train.steps=20", "train.val_every=0", "model.tie_embeddings=" + tie}), log);
  resumed.resume(dtb::periodic_checkpoint_path(ckpt, 10));
  Trainer other(tiny({"train.steps=20", "train.val_every=0", std::string("model.tie_embeddings=") +
                                                                   (tie == "true" ? "false" : "true")}), log);
  CHECK_THROWS_AS(other.resume(dtb::periodic_checkpoint_path(ckpt, 10)), dtb::UsageError);  // another model
  const auto& rest = resumed.run("test").steps;
  REQUIRE(rest.size() == 10);
  for (size_t i = 0; i < rest.size(); ++i) {
    INFO("step " << rest[i].step);
    CHECK(rest[i].step == losses[10 + i].step);
    CHECK(std::memcmp(&rest[i].loss, &losses[10 + i].loss, sizeof(double)) == 0);
    CHECK(std::memcmp(&rest[i].grad_norm, &losses[10 + i].grad_norm, sizeof(double)) == 0);
  }
  CHECK(differing(straight.gather_params(), resumed.gather_params()) == 0);
}

// The epoch sampler (issue 11): a checkpoint in the middle of an epoch (10 steps of 8 of 12
// sequences: epoch 6, place 8) continues bitwise; resuming it with the windows sampler or
// another epoch size is refused.
TEST_CASE("the epoch sampler resumes in the middle of an epoch bitwise", "[train][pp_compress]") {
  const std::string ckpt = (scratch() / "resume-epoch.h5").string();
  const std::vector<std::string> epoch = {"train.steps=14", "train.val_every=0", "data.sampler=epoch",
                                          "data.epoch_samples=12"};
  std::ostringstream log;
  std::vector<std::string> first = epoch;
  first.insert(first.end(), {"train.checkpoint=" + ckpt, "train.checkpoint_every=10"});
  Trainer straight(tiny(first), log);
  const auto losses = straight.run("test").steps;
  Trainer resumed(tiny(epoch), log);
  resumed.resume(dtb::periodic_checkpoint_path(ckpt, 10));
  const auto& rest = resumed.run("test").steps;
  REQUIRE(rest.size() == 4);
  for (size_t i = 0; i < rest.size(); ++i) CHECK(std::memcmp(&rest[i].loss, &losses[10 + i].loss, sizeof(double)) == 0);
  CHECK(differing(straight.gather_params(), resumed.gather_params()) == 0);
  const dtb::CheckpointState ck = dtb::load_checkpoint(dtb::periodic_checkpoint_path(ckpt, 10));
  CHECK(ck.epoch == 6);
  CHECK(ck.epoch_position == 8);
  Trainer windows(tiny({"train.steps=14", "train.val_every=0"}), log);
  CHECK_THROWS_AS(windows.resume(dtb::periodic_checkpoint_path(ckpt, 10)), dtb::UsageError);
  Trainer other(tiny({"train.steps=14", "train.val_every=0", "data.sampler=epoch", "data.epoch_samples=16"}), log);
  CHECK_THROWS_AS(other.resume(dtb::periodic_checkpoint_path(ckpt, 10)), dtb::UsageError);
}

int main(int argc, char** argv) {
  dtb::coll::MpiSession mpi(&argc, &argv, /*thread_multiple=*/true);  // a singleton: no mpirun
  return Catch::Session().run(argc, argv);
}

// A results file's /config is the resolved config: every key, each at its value. Passed back
// as --config (as dtbench verify does) it must mean the same run, so no check may depend on
// whether a key was written in a file or left at its default.
TEST_CASE("a resolved config read back means the same run", "[train][config]") {
  const dtb::Config given = dtb::load_config(
      dtb::train_schema(), {std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml"},
      {"data.path=" + fortunes(), "parallel.dp=2", "net.clock=virtual"});
  const fs::path file = scratch() / "resolved.yaml";
  { std::ofstream(file) << given.to_yaml(); }
  const dtb::Config back = dtb::load_config(dtb::train_schema(), {file.string()}, {});
  CHECK(back.to_yaml() == given.to_yaml());
  const dtb::TrainSettings a = dtb::train_settings(given), b = dtb::train_settings(back);
  CHECK(b.threads == a.threads);
  CHECK(b.threads_set == a.threads_set);  // train.threads: 0 (every core) stays "not set"
  CHECK(b.strategy.name == a.strategy.name);
  CHECK(b.parallel.bucket_mb == a.parallel.bucket_mb);
  // verify's commitments refuse the states their hash does not cover.
  CHECK_THROWS_WITH(dtb::train_settings(dtb::load_config(
                        dtb::train_schema(), {file.string()},
                        {"verify.segment=2", "strategy.name=diloco", "strategy.inner_steps=2"})),
                    Catch::Matchers::Contains("commitments cover strategy.name = ddp only"));
}
