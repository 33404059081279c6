// device.backend and device.precision (issue 7): asking for what this build, machine or
// layout cannot do is bad input like any other: one line naming the key, where its value
// came from and why, exit code 2, before any work. Runs in every build, GPU or not; the cuda
// preset runs it (label cuda) against its own dtbench, built with CUDA.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "cuda/availability.hpp"
#include "dtbench_runner.hpp"
#include "train/train_config.hpp"
#include "usage_error.hpp"

using Catch::Matchers::Contains;

namespace {

dtb::Config train_config(const std::vector<std::string>& sets) { return dtb::load_config(dtb::train_schema(), {}, sets); }

// The UsageError message of check_backend() on CONFIG, "" when it passes.
std::string usage_error_of(const dtb::Config& c) {
  try {
    dtb::check_backend(c);
  } catch (const dtb::UsageError& e) {
    return e.what();
  }
  return "";
}

// "dtbench train ARGS" must end with exit code 2 and one line holding every piece.
void expect_refused(const std::string& args, const std::vector<std::string>& pieces) {
  const auto dir = dtb::test::scratch_dir("test_backend");
  const auto outcome = dtb::test::run_dtbench("train " + args, dir);
  dtb::test::expect_usage_error(outcome, "train " + args, pieces);
  CHECK(outcome.out.empty());  // refused before the resolved config is printed: no work done
}

// The reason this build and machine give for not running CUDA ("" where they can).
const std::string& why_no_cuda() {
  static const std::string why = dtb::cuda::unavailable_reason();
  return why;
}

}  // namespace

TEST_CASE("device.backend is cpu and device.precision fp32 unless set, and cpu always passes") {
  const dtb::TrainSettings s = dtb::train_settings(train_config({}));
  CHECK(s.backend == "cpu");
  CHECK(s.precision == "fp32");
  CHECK(usage_error_of(train_config({"device.backend=cpu"})).empty());
  // A schema without the keys (a tool that does not pick backends) means cpu and fp32.
  CHECK(usage_error_of(dtb::Config(std::vector<dtb::KeySpec>{})).empty());
}

TEST_CASE("device.backend takes only cpu or cuda, device.precision only fp32 or bf16") {
  CHECK_THROWS_AS(train_config({"device.backend=tpu"}), dtb::UsageError);
  CHECK_THROWS_AS(train_config({"device.precision=fp16"}), dtb::UsageError);
}

TEST_CASE("the availability answers agree with each other and with the build") {
  CHECK(why_no_cuda().empty() == (dtb::cuda::device_count() > 0));
  if (!dtb::cuda::built_with_cuda()) {
    CHECK(dtb::cuda::device_count() == 0);
    CHECK_THAT(why_no_cuda(), Contains("built without CUDA") && Contains("-DDTB_CUDA=ON"));
  } else if (!why_no_cuda().empty()) {
    CHECK_THAT(why_no_cuda(), Contains("no CUDA device"));
  }
}

TEST_CASE("dtbench train --help lists device.backend and device.precision") {
  const auto o = dtb::test::run_dtbench("train --help", dtb::test::scratch_dir("test_backend"));
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("device.backend") && Contains("device.precision"));
}

TEST_CASE("device.backend=cuda where CUDA cannot run: one line with the reason, exit code 2") {
  if (why_no_cuda().empty()) {
    WARN("a CUDA device is usable here: nothing to refuse (test_cuda_train trains on it)");
    return;
  }
  const std::string message = usage_error_of(train_config({"device.backend=cuda"}));
  CHECK_THAT(message, Contains("--set") && Contains("device.backend") && Contains(why_no_cuda()));
  // A CPU build says how to get a CUDA one; a CUDA build without a GPU says there is none.
  const std::string what = dtb::cuda::built_with_cuda() ? "no CUDA device" : "built without CUDA";
  expect_refused("--set device.backend=cuda", {"device.backend", "cuda", what});
  if (!dtb::cuda::built_with_cuda()) expect_refused("--set device.backend=cuda", {"cmake --preset cuda"});
}

TEST_CASE("bf16 is refused on the CPU backend, on any machine") {
  expect_refused("--set device.precision=bf16", {"device.precision", "bf16", "device.backend = cuda"});
}

TEST_CASE("a width the GPU kernels cannot tile is named before the machine is asked") {
  // 132 = 4 heads x 33: a valid model on the CPU, not on the GPU (rows in packs of 8).
  expect_refused("--set device.backend=cuda --set model.n_embd=132",
                 {"model.n_embd", "multiple of 8", "device.backend = cuda"});
  CHECK(usage_error_of(train_config({"device.backend=cpu", "model.n_embd=132"})).empty());
}

TEST_CASE("untied embeddings on the GPU are refused before the machine is asked") {
  // The GPU model ties its LM head to wte; an untied model trains on the CPU.
  expect_refused("--set device.backend=cuda --set model.tie_embeddings=false",
                 {"model.tie_embeddings", "must be true", "device.backend = cuda"});
  CHECK(usage_error_of(train_config({"device.backend=cpu", "model.tie_embeddings=false"})).empty());
}

// The GPU holds one stage with every layer (parallel/stage_compute.hpp, BackendStage):
// anything else is refused from the config alone, the same on every machine.
TEST_CASE("device.backend=cuda beyond one rank, one micro-batch, a timed clock: refused, on any machine") {
  expect_refused("--set device.backend=cuda --set parallel.dp=2",
                 {"device.backend", "one rank only", "parallel.dp x parallel.pp x parallel.tp = 2"});
  expect_refused("--set device.backend=cuda --set parallel.microbatches=2",
                 {"device.backend", "one micro-batch", "parallel.microbatches = 2"});
  expect_refused("--set device.backend=cuda --set net.clock=virtual", {"device.backend", "net.clock = wall"});
}
