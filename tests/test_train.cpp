// The single-rank trainer against independent references: ln(V) at initialisation, a
// memorised batch, the unigram entropy of the corpus, and an uninterrupted run (resume).
#include <catch2/catch.hpp>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "data/dataset.hpp"
#include "optim/adamw.hpp"
#include "train/train.hpp"
#include "usage_error.hpp"

namespace fs = std::filesystem;

namespace {

fs::path scratch() {
  static fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("dtb_test_train_" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// The default corpus (Debian's fortunes), prepared once by the real command.
std::string fortunes() {
  static std::string path = [] {
    std::string out = (scratch() / "fortunes.h5").string();
    std::string cmd = std::string(DTB_BINARY) + " prepare --out " + out + " >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return out;
  }();
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

TEST_CASE("loss at initialisation is close to ln(V)", "[train]") {
  std::ostringstream log;
  dtb::Trainer trainer(tiny({}), log);
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
  dtb::Trainer trainer(tiny({"train.steps=300", "train.val_every=300"}), log);
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
  dtb::Trainer straight(tiny({"train.steps=20", "train.val_every=0", "train.checkpoint=" + ckpt,
                              "train.checkpoint_every=10", "model.tie_embeddings=" + tie}), log);
  const auto losses = straight.run("test").steps;
  REQUIRE(losses.size() == 20);

  dtb::Trainer resumed(tiny({"train.steps=20", "train.val_every=0", "model.tie_embeddings=" + tie}), log);
  resumed.resume(dtb::periodic_checkpoint_path(ckpt, 10));
  dtb::Trainer other(tiny({"train.steps=20", "train.val_every=0", std::string("model.tie_embeddings=") +
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
  const size_t n = straight.model().num_params();
  CHECK(std::memcmp(straight.model().params(), resumed.model().params(), n * sizeof(float)) == 0);
}
