// dtbench train --set device.backend=cuda end to end (label gpu): the tiny model for five
// steps on the GPU in fp32 against the same run on the CPU, through the binary, its results
// files and its checkpoints. Losses within 1e-4 relative per step (test_cuda_model's bound
// for five fp32 steps); the GPU checkpoint's parameters and moments against the CPU's
// (catches a state copied in the wrong order or not at all); a CPU checkpoint resumed on the
// GPU continuing the CPU's losses (the upload path). Exits 77 (ctest: skipped), saying why,
// where no GPU can run it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "cuda/availability.hpp"
#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "train/checkpoint.hpp"  // periodic_checkpoint_path

namespace fs = std::filesystem;

namespace {

constexpr double kLossRel = 1e-4;   // relative, per step (fp32, five steps)
constexpr double kStateTol = 1e-3;  // normalized 2-norm error: a wrong copy is off by O(1)
constexpr int kSteps = 5, kResumeAt = 3;

// The source tree (configs/model/tiny.yaml): $DTB_SOURCE_DIR on a machine the build was
// carried to (trainer/cuda/gpu_check.sh), else the one this build was made from.
std::string source_dir() {
  const char* env = std::getenv("DTB_SOURCE_DIR");
  return env && *env ? std::string(env) : std::string(DTB_SOURCE_DIR);
}

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_cuda_train");
  return dir;
}

// Uniform random byte tokens: the GPU machine need not have the fortunes corpus.
std::string dataset() {
  static const std::string path = [] {
    const std::string out = (scratch() / "synthetic.h5").string();
    const auto o = dtb::test::run_dtbench("prepare --synthetic --vocab 256 --tokens 200000 --out " + out, scratch());
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    return out;
  }();
  return path;
}

// "dtbench train" on the tiny model; NAME names its results and checkpoint files.
dtb::test::Outcome train(const std::string& name, const std::string& extra) {
  const fs::path d = scratch();
  const std::string args = "train --config " + source_dir() + "/configs/model/tiny.yaml" +
                           " --set data.path=" + dataset() + " --set train.steps=" + std::to_string(kSteps) +
                           " --set train.val_every=0 --set train.threads=1 --set train.results=" +
                           (d / (name + "-results.h5")).string() + " --set train.checkpoint=" +
                           (d / (name + ".h5")).string() + " " + extra;
  const auto o = dtb::test::run_dtbench(args, d);
  INFO("dtbench " << args << "\nstdout: " << o.out << "\nstderr: " << o.err);
  REQUIRE(o.exit_code == 0);
  return o;
}

// Step index -> loss, from a results file.
std::map<int64_t, double> losses(const std::string& name) {
  const auto f = dtb::h5::File::open_read((scratch() / (name + "-results.h5")).string());
  const auto step = f.read<int64_t>("steps/step");
  const auto loss = f.read<double>("steps/loss");
  std::map<int64_t, double> out;
  for (size_t i = 0; i < step.size() && i < loss.size(); ++i) out[step[i]] = loss[i];
  return out;
}

std::vector<double> dataset_of(const std::string& checkpoint, const std::string& name) {
  return dtb::h5::File::open_read((scratch() / checkpoint).string()).read<double>(name);
}

double normalized_error(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  return std::sqrt(num / den);
}

void check_losses(const std::map<int64_t, double>& gpu, const std::map<int64_t, double>& cpu) {
  REQUIRE(!gpu.empty());
  for (const auto& [step, loss] : gpu) {
    REQUIRE(cpu.count(step) == 1);
    const double rel = std::abs(loss - cpu.at(step)) / std::abs(cpu.at(step));
    std::printf("%s step %lld loss gpu %.7f cpu %.7f rel %.2e (tol %.0e)\n", rel <= kLossRel ? "OK  " : "FAIL",
                static_cast<long long>(step), loss, cpu.at(step), rel, kLossRel);
    CHECK(rel <= kLossRel);
  }
}

}  // namespace

TEST_CASE("device.backend=cuda fp32 trains the tiny model as the CPU does") {
  // The CPU run also leaves a checkpoint at step kResumeAt for the resume below.
  train("cpu", "--set train.checkpoint_every=" + std::to_string(kResumeAt));
  const auto gpu = train("gpu", "--set device.backend=cuda --set device.precision=fp32");
  CHECK_THAT(gpu.out, Catch::Matchers::Contains("cuda fp32"));  // the backend says what ran
  const auto gpu_losses = losses("gpu"), cpu_losses = losses("cpu");
  CHECK(gpu_losses.size() == size_t(kSteps));
  check_losses(gpu_losses, cpu_losses);

  for (const char* name : {"params", "adam/m", "adam/v"}) {
    const double err = normalized_error(dataset_of("gpu.h5", name), dataset_of("cpu.h5", name));
    std::printf("%s checkpoint %-7s normerr %.2e (tol %.0e)\n", err <= kStateTol ? "OK  " : "FAIL", name, err,
                kStateTol);
    CHECK(err <= kStateTol);
  }

  // A CPU checkpoint continues on the GPU: same layout, same data order.
  const std::string resume_from = dtb::periodic_checkpoint_path((scratch() / "cpu.h5").string(), kResumeAt);
  train("resumed", "--set device.backend=cuda --set device.precision=fp32 --resume " + resume_from);
  const auto resumed = losses("resumed");
  CHECK(resumed.size() == size_t(kSteps - kResumeAt));
  check_losses(resumed, cpu_losses);
}

int main(int argc, char** argv) {
  if (const std::string why = dtb::cuda::unavailable_reason(); !why.empty()) {
    std::printf("SKIP test_cuda_train: %s\n", why.c_str());
    return 77;
  }
  const int failed = Catch::Session().run(argc, argv);
  fs::remove_all(scratch());
  return failed == 0 ? 0 : 1;
}
