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
#include <sstream>

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

// ------------------------------------------------------------------ optim.outlier_z, DiLoCo's NaN, checksums

namespace {

std::string outlier_run(const std::string& results, const std::string& extra) {
  return "train --config " + kTiny + " --set model.n_layer=1 --set model.n_embd=64 --set data.path=" + small_dataset() +
         " --set train.seq_len=32 --set train.batch_size=2 --set train.steps=136 --set train.val_every=0" +
         " --set train.log_every=1 --set net.clock=virtual --set train.results=" + results + " --overwrite " + extra;
}

// The step lines, whole, in order.
std::vector<std::string> step_lines(const std::string& out) {
  std::vector<std::string> v;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("step ", 0) == 0) v.push_back(line);
  return v;
}

}  // namespace

TEST_CASE("optim.outlier_z skips the update of an injected spike and nothing on a clean run", "[faults][outlier]") {
  const Outcome plain = dtbench(outlier_run("plain.h5", ""));
  const Outcome clean = dtbench(outlier_run("clean.h5", "--set optim.outlier_z=6"));
  const Outcome spiked = dtbench(outlier_run(
      "spiked.h5", "--set optim.outlier_z=6 --set faults.grad_spike_step=132 --set faults.grad_spike=1000"));
  INFO(clean.err << spiked.err);
  REQUIRE(plain.exit_code == 0);
  REQUIRE(clean.exit_code == 0);
  REQUIRE(spiked.exit_code == 0);
  const auto p = step_losses(plain.out), c = step_losses(clean.out), s = step_losses(spiked.out);
  REQUIRE(p.size() == 136);
  // On, with nothing to skip: the same run as off (losses, norms), no skip counted.
  CHECK(c == p);
  CHECK(step_lines(plain.out)[135].find("skips") == std::string::npos);  // off: the step line as it was
  CHECK(step_lines(clean.out)[135].find("| skips 0") != std::string::npos);
  const dtb::h5::File clean_h5 = dtb::h5::File::open_read((scratch() / "clean.h5").string());
  CHECK(clean_h5.attr_int("/", "outlier_skips") == 0);
  CHECK_FALSE(dtb::h5::File::open_read((scratch() / "plain.h5").string()).has_attr("/", "outlier_skips"));
  // The spike: step 132's norm is 1000 times the clean one; its update is skipped, and
  // only it. Before it the runs are one; after it they differ only by the missing update.
  REQUIRE(s.size() == 136);
  for (size_t i = 0; i < 131; ++i) CHECK(s[i] == c[i]);
  CHECK(s[131].second == Approx(1000 * c[131].second).epsilon(1e-3));
  const std::vector<std::string> lines = step_lines(spiked.out);
  CHECK(lines[131].find("update skipped (norm z ") != std::string::npos);
  CHECK(lines[131].find("| skips 1") != std::string::npos);
  CHECK(lines[135].find("| skips 1") != std::string::npos);
  const dtb::h5::File h5 = dtb::h5::File::open_read((scratch() / "spiked.h5").string());
  CHECK(h5.attr_int("/", "outlier_skips") == 1);
  CHECK(h5.read<int64_t>("outlier/skipped_steps") == std::vector<int64_t>{131});
  // Without the switch the same spike is trained on: the next step's loss shows it.
  const Outcome taken = dtbench(outlier_run("taken.h5", "--set faults.grad_spike_step=132 --set faults.grad_spike=1000"));
  const auto t = step_losses(taken.out);
  REQUIRE(t.size() == 136);
  CHECK(t[132].first != s[132].first);
}

TEST_CASE("DiLoCo: one worker's NaN stops every rank at that step with one line, no hang", "[faults][mpi]") {
  // Worker 1 (rank 1) alone gets NaN gradients at step 3, inside an outer step of 4 inner
  // steps: the workers agree before the update, so both stop, and nobody waits in a collective.
  const Outcome o = shell("timeout 120 mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " +
                          dtb::test::dtbench_binary() + " " + diverging(8) +
                          " --set optim.lr=0.001 --set optim.weight_decay=0 --set parallel.dp=2 --set net.clock=virtual" +
                          " --set strategy.name=diloco --set strategy.inner_steps=4 --set faults.grad_spike_step=3" +
                          " --set faults.grad_spike=nan --set faults.grad_spike_rank=1");
  INFO(o.out << o.err);
  CHECK(o.exit_code == 4);  // not 124: no hang
  const std::regex error_line("(^|\n)error: ");
  CHECK(std::distance(std::sregex_iterator(o.err.begin(), o.err.end(), error_line), std::sregex_iterator()) == 1);
  CHECK_THAT(o.err, Contains("error: step 3: ") && Contains("first non-finite gradient: tensor '") &&
                        Contains("no checkpoint written"));
  CHECK(step_losses(o.out).size() == 2);  // steps 1 and 2 trained, step 3 did not
  CHECK_FALSE(fs::exists(scratch() / "ck.h5"));
}

TEST_CASE("a flipped byte in any checkpoint dataset, or in the run's position, is refused naming it", "[faults]") {
  // A checkpoint with every kind of state: parameters and moments, DiLoCo's arrays, AQ-SGD's
  // buffers, the epoch sampler's cursor, the outlier detector. Each array's values are a
  // pattern found once in the file; one byte of it is flipped.
  dtb::CheckpointState ck;
  ck.model = {256, 16, 1, 2, 16, true};
  const size_t n = dtb::num_parameters(ck.model);
  auto pattern = [](size_t size, float base) {
    std::vector<float> v(size);
    for (size_t i = 0; i < size; ++i) v[i] = base * (1.f + 1e-6f * float(i));  // no two arrays overlap
    return v;
  };
  ck.params = pattern(n, 1.f), ck.adam_m = pattern(n, 2.f), ck.adam_v = pattern(n, 3.f);
  ck.step = 12, ck.seed = 7, ck.data_cursor = 0x123456789a;
  ck.config_yaml = "model:\n  name: x\n";
  ck.sampler = "epoch", ck.epoch_samples = 40, ck.epoch = 3, ck.epoch_position = 12;
  ck.pp_compress = "aqsgd", ck.pp_buffer_width = 4;
  ck.pp_buffers = {{0x5a5a5a5a5a, {0x7fff1234u, 0x7fff5678u}, pattern(8, 5.f)}};
  ck.strategy = {{"diloco/anchor", pattern(n, 6.f)}, {"diloco/worker1/params", pattern(n, 7.f)}};
  ck.outlier_state = {1.25e3, 2.5e5, 11.5, 12.25, 13.125};
  const fs::path good = scratch() / "all-kinds.h5";
  dtb::save_checkpoint(good.string(), ck);
  const dtb::CheckpointState back = dtb::load_checkpoint(good.string());  // the intact file loads, whole
  CHECK(back.strategy == ck.strategy);
  CHECK(back.pp_buffers.size() == 1);
  CHECK(back.outlier_state == ck.outlier_state);

  auto bytes_of = [](const auto& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(v[0]));
  };
  const int64_t layer = ck.pp_buffers[0].layer;
  const uint64_t cursor = ck.data_cursor;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"strategy/diloco/anchor", bytes_of(ck.strategy[0].second)},
      {"strategy/diloco/worker1/params", bytes_of(ck.strategy[1].second)},
      {"pp_buffers/values", bytes_of(ck.pp_buffers[0].values)},
      {"pp_buffers/ids", bytes_of(ck.pp_buffers[0].ids)},
      {"pp_buffers/layers", std::string(reinterpret_cast<const char*>(&layer), 8)},
      {"outlier/state", bytes_of(ck.outlier_state)},
      {"root attributes", std::string(reinterpret_cast<const char*>(&cursor), 8)},
  };
  const std::string file = dtb::test::slurp(good);
  for (const auto& [name, needle] : cases) {
    INFO(name);
    const size_t at = file.find(needle.substr(0, std::min<size_t>(needle.size(), 16)));
    REQUIRE(at != std::string::npos);
    REQUIRE(file.find(needle.substr(0, 8), at + 1) == std::string::npos);  // found once: it is that dataset's
    fs::copy_file(good, scratch() / "flipped.h5", fs::copy_options::overwrite_existing);
    flip_byte(scratch() / "flipped.h5", at + 1);
    try {
      dtb::load_checkpoint((scratch() / "flipped.h5").string());
      FAIL("accepted a flipped byte in " << name);
    } catch (const dtb::UsageError& e) {
      const std::string msg = e.what();
      INFO(msg);
      CHECK(msg.find('\n') == std::string::npos);
      CHECK(msg.find("corrupt") != std::string::npos);
      CHECK(msg.find(name == "root attributes" ? "the root attributes" : "dataset '" + name + "' fails its checksum") !=
            std::string::npos);
    }
  }
}
