// The dtbench binary end to end: help from the parser's own tables, and every class of bad
// input (config, layout of keys, dataset, checkpoint) answered with one line and exit code 2.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "dtbench_runner.hpp"
#include "train/train_config.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

using dtb::test::Outcome;

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_cli");
  return dir;
}

Outcome dtbench(const std::string& args) { return dtb::test::run_dtbench(args, scratch()); }

void expect_usage_error(const std::string& args, const std::vector<std::string>& pieces) {
  dtb::test::expect_usage_error(dtbench(args), args, pieces);
}

std::string write_file(const std::string& name, const std::string& text) {
  fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p.string();
}

const std::string kTiny = std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml";

// A small byte dataset made by the real prepare command.
std::string small_dataset() {
  static std::string path = [] {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "The quick brown fox jumps over the lazy dog. ";
    std::string src = write_file("corpus.txt", text);
    std::string out = (scratch() / "small.h5").string();
    REQUIRE(dtbench("prepare " + src + " --out " + out).exit_code == 0);
    return out;
  }();
  return path;
}

}  // namespace

TEST_CASE("help lists every command and every config key", "[cli]") {
  Outcome top = dtbench("--help");
  CHECK(top.exit_code == 0);
  for (const char* c : {"prepare", "train", "bench"}) CHECK_THAT(top.out, Contains(c));
  Outcome train = dtbench("train --help");
  CHECK(train.exit_code == 0);
  for (const auto& key : dtb::train_schema()) CHECK_THAT(train.out, Contains(key.key));
  for (const char* opt : {"--config", "--set", "--resume"}) CHECK_THAT(train.out, Contains(opt));
  CHECK(dtbench("prepare --help").exit_code == 0);
  CHECK(dtbench("bench --help").exit_code == 0);
}

TEST_CASE("bad command lines exit 2 with one line", "[cli]") {
  expect_usage_error("frobnicate", {"unknown command 'frobnicate'"});
  expect_usage_error("train --no-such-option", {"no-such-option", "--help"});
  CHECK(dtbench("").exit_code == 2);  // no command: usage on stdout, exit 2
}

TEST_CASE("bad configs exit 2 naming file, key and what is allowed", "[cli]") {
  std::string unknown = write_file("unknown.yaml", "train:\n  stepz: 3\n");
  expect_usage_error("train --config " + kTiny + " --config " + unknown,
                     {unknown, "unknown key 'train.stepz'", "did you mean 'train.steps'"});
  expect_usage_error("train --config " + kTiny + " --set train.steps=many",
                     {"--set", "train.steps", "an integer"});
  expect_usage_error("train --config " + kTiny + " --set optim.lr=-1",
                     {"optim.lr", "(0, 10]"});
  expect_usage_error("train --config /no/such.yaml", {"/no/such.yaml", "no such config file"});
  expect_usage_error("train --config " + kTiny + " --set model.n_head=3",
                     {"model.n_head", "must divide model.n_embd = 128"});
  expect_usage_error("train --config " + kTiny + " --set train.seq_len=65",
                     {"train.seq_len", "at most model.n_ctx = 64"});
}

TEST_CASE("bad datasets exit 2 naming the file", "[cli]") {
  const std::string base = "train --config " + kTiny + " --set train.steps=1 ";
  expect_usage_error(base + "--set data.path=/no/such.h5", {"/no/such.h5"});
  std::string text = write_file("not_hdf5.h5", "plain text, not HDF5\n");
  expect_usage_error(base + "--set data.path=" + text, {text, "not an HDF5 file"});

  std::string big_vocab = (scratch() / "v300.h5").string();
  REQUIRE(dtbench("prepare --synthetic --vocab 300 --tokens 5000 --out " + big_vocab).exit_code == 0);
  expect_usage_error(base + "--set data.path=" + big_vocab, {big_vocab, "300", "model.vocab_size"});

  // A checkpoint is an HDF5 file, but not a token dataset.
  std::string ckpt = (scratch() / "ck.h5").string();
  REQUIRE(dtbench(base + "--set data.path=" + small_dataset() + " --set train.val_every=0" +
                  " --set train.checkpoint=" + ckpt + " --set train.results=" +
                  (scratch() / "r.h5").string()).exit_code == 0);
  expect_usage_error(base + "--set data.path=" + ckpt, {ckpt});

  std::string tiny_text = write_file("tiny.txt", std::string(600, 'a'));
  std::string short_set = (scratch() / "short.h5").string();
  REQUIRE(dtbench("prepare " + tiny_text + " --out " + short_set).exit_code == 0);
  expect_usage_error(base + "--set data.path=" + short_set, {short_set, "65"});
}

TEST_CASE("bad checkpoints exit 2", "[cli]") {
  const std::string base = "train --config " + kTiny + " --set train.steps=1 --set data.path=" +
                           small_dataset() + " --set train.results=" + (scratch() / "r2.h5").string();
  expect_usage_error(base + " --resume /no/such/ckpt.h5", {"/no/such/ckpt.h5"});
  expect_usage_error(base + " --resume " + small_dataset(), {small_dataset(), "not a dtbench checkpoint"});
  std::string ckpt = (scratch() / "ck_small.h5").string();
  REQUIRE(dtbench(base + " --set model.n_layer=1 --set train.checkpoint=" + ckpt).exit_code == 0);
  expect_usage_error(base + " --resume " + ckpt, {ckpt, "model shape"});
}

// A world of one is a run like any other: its network profile is loaded and checked.
TEST_CASE("one rank checks net.profile: missing or bad, one line and exit 2", "[cli]") {
  const std::string base = "train --config " + kTiny + " --set train.steps=1 --set train.val_every=0 --set data.path=" +
                           small_dataset() + " --set train.results=" + (scratch() / "r3.h5").string();
  expect_usage_error(base + " --set net.profile=/no/such/profile.yaml", {"/no/such/profile.yaml", "no such network profile"});
  const std::string bad = write_file("bad_profile.yaml", "sites:\n  - {name: dc1, ranks: many}\n");
  expect_usage_error(base + " --set net.profile=" + bad, {bad, "ranks"});
  const std::string shipped = std::string(DTB_SOURCE_DIR) + "/configs/net/dtfm-3-two-dcs.yaml";
  CHECK(dtbench(base + " --set net.profile=" + shipped).exit_code == 0);
}

// One step line for every world size, a world of one included, and one results file.
TEST_CASE("one rank: the step line and results file of every run", "[cli]") {
  const std::string results = (scratch() / "r4.h5").string();
  const Outcome o = dtbench("train --config " + kTiny + " --set train.steps=2 --set train.val_every=0 --set data.path=" +
                            small_dataset() + " --set train.results=" + results);
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("parameters on 1 rank (dp=1 pp=1 tp=1"));
  CHECK_THAT(o.out, Contains("clock wall"));
  const size_t at = o.out.find("step     2/2 | loss ");
  REQUIRE(at != std::string::npos);
  const std::string line = o.out.substr(at, o.out.find('\n', at) - at);
  for (const char* field : {" | norm ", " | lr ", " ms | ", " tok/s | ", " GFLOP/s | ", " MFU | exposed comm ", "%) | hidden DP ",
                            " ms | bubble "})
    CHECK_THAT(line, Contains(field));
  CHECK(line.find(" tok/s | ") < line.find(" GFLOP/s | "));
  CHECK(line.find(" GFLOP/s | ") < line.find(" MFU | "));
}
