// Nothing trained on garbage (issue 14): a run whose loss or gradient norm goes non-finite
// stops at that step with one line and writes no checkpoint, on one rank and on two; a
// checkpoint with a flipped byte or with non-finite values is refused naming the dataset;
// a model that cannot fit in memory is refused before it allocates.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "model/schema.hpp"
#include "train/checkpoint.hpp"
#include "train/memory_check.hpp"
#include "usage_error.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using dtb::test::Outcome;

namespace {

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_faults");
  return dir;
}

Outcome shell(const std::string& command) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);  // Open MPI refuses root otherwise
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  return dtb::test::run_shell(command, scratch(), scratch());
}
Outcome dtbench(const std::string& args) { return shell(dtb::test::dtbench_binary() + " " + args); }

const std::string kTiny = std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml";

std::string small_dataset() {
  static const std::string path = [] {
    std::string text;
    for (int i = 0; i < 400; ++i) text += "The quick brown fox jumps over the lazy dog. ";
    std::ofstream(scratch() / "corpus.txt") << text;
    REQUIRE(dtbench("prepare corpus.txt --out small.h5").exit_code == 0);
    return (scratch() / "small.h5").string();
  }();
  return path;
}

// A two-layer model trained with a learning rate of 10 and weight decay 10, no warm-up and
// no clipping: decoupled decay multiplies every matrix by 1 - lr wd = -99 per step, so the
// weights pass float's largest value within a few steps, whatever the gradients do.
std::string diverging(int steps) {
  return "train --config " + kTiny + " --set model.n_layer=2 --set data.path=" + small_dataset() +
         " --set optim.lr=10 --set optim.weight_decay=10 --set optim.warmup_steps=0 --set optim.grad_clip=0" +
         " --set train.steps=" + std::to_string(steps) + " --set train.log_every=1 --set train.val_every=0" +
         " --set train.results=r.h5 --set train.checkpoint=ck.h5 --overwrite";  // reruns in one folder
}

// The step lines' (loss, norm) pairs, in order.
std::vector<std::pair<double, double>> step_losses(const std::string& out) {
  std::vector<std::pair<double, double>> v;
  const std::regex line(R"(step +\d+/\d+ \| loss (\S+) \| norm (\S+) \|)");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), line); it != std::sregex_iterator(); ++it)
    v.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  return v;
}

// The stop line "error: step N: ..." -> N (under mpirun, its notes may come first).
int stop_step(const std::string& err) {
  std::smatch m;
  REQUIRE(std::regex_search(err, m, std::regex(R"((?:^|\n)error: step (\d+): loss )")));
  return std::stoi(m[1]);
}

// PATH with its byte at OFFSET inverted.
void flip_byte(const fs::path& path, size_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(offset));
  char c = 0;
  f.read(&c, 1);
  c = char(~c);
  f.seekp(std::streamoff(offset));
  f.write(&c, 1);
}

// Where NEEDLE (a run of floats) sits in the file's bytes.
size_t find_floats(const fs::path& path, const float* needle, size_t n) {
  const std::string bytes = dtb::test::slurp(path);
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(needle), n * sizeof(float)));
  REQUIRE(at != std::string::npos);
  return at;
}

}  // namespace

TEST_CASE("a non-finite loss or norm stops the run at that step, one line, no checkpoint", "[faults]") {
  const Outcome o = dtbench(diverging(30));
  INFO(o.out << o.err);
  CHECK(o.exit_code == 4);
  CHECK(std::count(o.err.begin(), o.err.end(), '\n') == 1);
  const int n = stop_step(o.err);
  CHECK(n > 1);
  CHECK(n < 30);
  CHECK_THAT(o.err, Contains("first non-finite gradient: tensor '") && Contains("no checkpoint written"));
  // Every step before it printed finite numbers, and step N printed nothing.
  const auto losses = step_losses(o.out);
  REQUIRE(int(losses.size()) == n - 1);
  for (const auto& [loss, norm] : losses) CHECK((std::isfinite(loss) && std::isfinite(norm)));
  CHECK_FALSE(fs::exists(scratch() / "ck.h5"));
}

TEST_CASE("two DP ranks stop together at the step one rank stops at", "[faults][mpi]") {
  const Outcome one = dtbench(diverging(30));
  const int n = stop_step(one.err);
  fs::remove(scratch() / "ck.h5");
  const Outcome two = shell("mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " + dtb::test::dtbench_binary() +
                            " " + diverging(30) + " --set parallel.dp=2 --set net.clock=virtual");
  INFO(two.out << two.err);
  CHECK(two.exit_code == 4);
  // Rank 0 speaks, rank 1 exits quietly (below it, mpirun's own note that a rank exited 4).
  const std::regex error_line("(^|\n)error: ");
  CHECK(std::distance(std::sregex_iterator(two.err.begin(), two.err.end(), error_line), std::sregex_iterator()) == 1);
  CHECK(stop_step(two.err) == n);
  CHECK_FALSE(fs::exists(scratch() / "ck.h5"));
}

TEST_CASE("a checkpoint with a flipped byte is refused naming the dataset", "[faults]") {
  const std::string base = "train --config " + kTiny + " --set model.n_layer=1 --set data.path=" + small_dataset() +
                           " --set train.val_every=0 --set train.results=r.h5 --overwrite";
  REQUIRE(dtbench(base + " --set train.steps=2 --set train.checkpoint=good.h5").exit_code == 0);
  const dtb::CheckpointState ck = dtb::load_checkpoint((scratch() / "good.h5").string());
  REQUIRE(dtbench(base + " --set train.steps=3 --resume good.h5").exit_code == 0);  // the intact file resumes

  // One bit pattern of each dataset, found in the file's bytes and changed there.
  const std::pair<const char*, const std::vector<float>*> datasets[] = {
      {"params", &ck.params}, {"adam/m", &ck.adam_m}, {"adam/v", &ck.adam_v}};
  for (const auto& [name, data] : datasets) {
    INFO(name);
    fs::copy_file(scratch() / "good.h5", scratch() / "bad.h5", fs::copy_options::overwrite_existing);
    // Elements 1000..1003: inside wte, nonzero after two steps, and unlikely to repeat elsewhere.
    flip_byte(scratch() / "bad.h5", find_floats(scratch() / "bad.h5", data->data() + 1000, 4) + 5);
    dtb::test::expect_usage_error(dtbench(base + " --set train.steps=3 --resume bad.h5"), name,
                                  {"bad.h5", "dataset '" + std::string(name) + "' fails its checksum", "corrupt"});
  }
}

TEST_CASE("a checkpoint holding non-finite values is refused naming the tensor and layer", "[faults]") {
  const std::string base = "train --config " + kTiny + " --set model.n_layer=2 --set data.path=" + small_dataset() +
                           " --set train.val_every=0 --set train.results=r.h5 --overwrite";
  REQUIRE(dtbench(base + " --set train.steps=1 --set train.checkpoint=fine.h5").exit_code == 0);
  dtb::CheckpointState ck = dtb::load_checkpoint((scratch() / "fine.h5").string());
  // qkvw of layer 1, element 5: V C + n_ctx C (wte, wpe), 4 L C (ln1w, ln1b) ... by hand:
  // wte 256x128, wpe 64x128, ln1w 2x128, ln1b 2x128, then qkvw (2, 384, 128).
  const size_t C = 128, qkvw = 256 * C + 64 * C + 2 * C + 2 * C;
  ck.params[qkvw + 3 * C * C + 5] = std::nanf("");
  dtb::save_checkpoint((scratch() / "nan.h5").string(), ck);  // its checksums are right
  dtb::test::expect_usage_error(dtbench(base + " --set train.steps=2 --resume nan.h5"), "nan.h5",
                                {"nan.h5", "dataset 'params'", "tensor 'qkvw' (layer 1, element 5 of the layer's slice)",
                                 "cannot be resumed"});
  ck.params[qkvw + 3 * C * C + 5] = 0.5f;
  ck.adam_v[0] = INFINITY;  // wte's first element
  dtb::save_checkpoint((scratch() / "inf.h5").string(), ck);
  dtb::test::expect_usage_error(dtbench(base + " --set train.steps=2 --resume inf.h5"), "inf.h5",
                                {"dataset 'adam/v'", "inf in tensor 'wte' (element 0)"});
}

TEST_CASE("the memory check: refused exactly when the estimate exceeds what is available", "[faults]") {
  const dtb::MemoryBreakdown need{100, 100, 100, 100, 50, 50};  // 500 bytes
  const auto alone = [](double x) { return x; };  // a world of one
  CHECK_NOTHROW(dtb::check_rank_memory(need, alone, {500, 1000, "test"}));
  CHECK_THROWS_AS(dtb::check_rank_memory(need, alone, {499, 1000, "test"}), dtb::UsageError);
  // Another rank short of memory refuses this one too (the world's max says so).
  CHECK_THROWS_AS(dtb::check_rank_memory(need, [](double x) { return std::max(x, 2.0); }, {1000, 1000, "test"}),
                  dtb::UsageError);
  const dtb::MachineMemory here = dtb::machine_memory();
  CHECK(here.available > 0);
  CHECK(here.available <= here.total);
}

TEST_CASE("a model far larger than the machine is refused with its estimate before allocating", "[faults]") {
  // GPT-3's shape (96 layers, width 12288): 175e9 parameters, 16 bytes each with grads and
  // moments: about 2,800 GB, on any machine CI runs on.
  const Outcome o = dtbench("train --config " + kTiny + " --set data.path=" + small_dataset() +
                            " --set model.n_layer=96 --set model.n_embd=12288 --set model.n_head=96 --set train.steps=1" +
                            " --set train.results=r.h5");
  dtb::test::expect_usage_error(o, "gpt3", {"the model needs about 2", " GB on its largest rank", "available (", "parallel.pp"});
  CHECK_THAT(o.err, !Contains("bad_alloc"));
}

namespace {

// Per-rank records of a results file: DATASET ("forward", "step_time", ...) of rank RANK,
// steps after the first (warm-up).
std::vector<double> rank_series(const std::string& results, const std::string& dataset, int rank) {
  const dtb::h5::File f = dtb::h5::File::open_read(results);
  const std::vector<double> values = f.read<double>("ranks/" + dataset);
  const std::vector<double> ranks = f.read<double>("ranks/rank");
  const std::vector<double> steps = f.read<double>("ranks/step");
  std::vector<double> out;
  for (size_t i = 0; i < values.size(); ++i)
    if (int(ranks[i]) == rank && steps[i] > 0) out.push_back(values[i]);
  return out;
}

std::string straggler_run(const std::string& results, const std::string& extra) {
  return "train --config " + kTiny + " --set model.n_layer=1 --set data.path=" + small_dataset() +
         " --set train.steps=3 --set train.val_every=0 --set train.results=" + results + " " + extra;
}

}  // namespace

TEST_CASE("a straggler's compute takes faults.slowdown times as long on the virtual clock", "[faults][stragglers]") {
  // A device model makes compute FLOPs / rate, the same in both runs: the slow run's
  // forward, backward and step are exactly 3 times the plain run's.
  const std::string device = "--set net.clock=virtual --set device.peak_gflops=50";
  REQUIRE(dtbench(straggler_run("plain.h5", device)).exit_code == 0);
  REQUIRE(dtbench(straggler_run("slow.h5", device + " --set faults.slow_ranks=0 --set faults.slowdown=3")).exit_code == 0);
  for (const char* part : {"forward", "backward", "step_time"}) {
    INFO(part);
    const std::vector<double> plain = rank_series((scratch() / "plain.h5").string(), part, 0);
    const std::vector<double> slow = rank_series((scratch() / "slow.h5").string(), part, 0);
    REQUIRE(plain.size() == 2);
    REQUIRE(slow.size() == 2);
    for (size_t i = 0; i < plain.size(); ++i) CHECK(slow[i] == Approx(3 * plain[i]).epsilon(1e-9));
  }
  // On DP = 2, rank 1 slowed: its compute is 3 times rank 0's, and rank 0's step waits for it.
  const Outcome two = shell("mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " + dtb::test::dtbench_binary() +
                            " " + straggler_run("dp2.h5", device + " --set parallel.dp=2 --set faults.slow_ranks=1" +
                                                              " --set faults.slowdown=3"));
  INFO(two.err);
  REQUIRE(two.exit_code == 0);
  const std::string dp2 = (scratch() / "dp2.h5").string();
  const std::vector<double> f0 = rank_series(dp2, "forward", 0), f1 = rank_series(dp2, "forward", 1);
  const std::vector<double> b1 = rank_series(dp2, "backward", 1), step0 = rank_series(dp2, "step_time", 0);
  REQUIRE(f0.size() == 2);
  for (size_t i = 0; i < f0.size(); ++i) {
    CHECK(f1[i] == Approx(3 * f0[i]).epsilon(1e-9));
    // The fast rank's step covers the slow rank's compute (3 times its own).
    CHECK(step0[i] >= (f1[i] + b1[i]) * (1 - 1e-12));
    CHECK(step0[i] > 2.9 * (f0[i] + rank_series(dp2, "backward", 0)[i]));
  }
}

TEST_CASE("a straggler on the wall clock sleeps out the difference", "[faults][stragglers]") {
  // One thread, no device model: the step's real time is at least slowdown x the kernels'
  // CPU time (the kernels' own time plus the sleep of (slowdown - 1) x it).
  REQUIRE(dtbench(straggler_run("wall.h5", "--set net.clock=wall --set train.threads=1 --set faults.slow_ranks=0 "
                                           "--set faults.slowdown=3")).exit_code == 0);
  const std::vector<double> step = rank_series((scratch() / "wall.h5").string(), "step_time", 0);
  const std::vector<double> cpu = rank_series((scratch() / "wall.h5").string(), "kernel_cpu", 0);
  REQUIRE(step.size() == 2);
  for (size_t i = 0; i < step.size(); ++i) CHECK(step[i] >= 2.9 * cpu[i]);
}
