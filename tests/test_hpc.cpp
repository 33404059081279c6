// What a cluster install and a paper need from a run (issue 13): the DP bucket count a run
// reports, the provenance every result file carries (build, MPI, OpenBLAS, CPU, the Slurm
// job), and the srun line dtbench run builds from an experiment's srun_mpi / srun_args and
// the environment's DTB_SRUN_MPI / DTB_SRUN_ARGS. Each value is checked against what this
// test process finds on its own (MPI_Get_library_version, openblas_get_config,
// /proc/cpuinfo) or computes by hand (the bucket count from the parameter count).
#include <catch2/catch.hpp>
#include <cblas.h>
#include <mpi.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "dtbench_runner.hpp"
#include "h5file.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using dtb::test::Outcome;

namespace {

// A folder of this test process, removed when it ends.
fs::path scratch() {
  static const dtb::test::ScratchDir dir("hpc");
  return dir.path;
}

// Commands run in the scratch folder, with no Slurm job around them unless the command
// sets one (ctest itself may run inside an allocation).
Outcome shell(const std::string& command) {
  return dtb::test::run_shell("env -u SLURM_JOB_ID -u DTB_SRUN_MPI -u DTB_SRUN_ARGS " + command, scratch(), scratch());
}
std::string dtbench() { return dtb::test::dtbench_binary(); }

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  std::ofstream(p) << text;
  return p.string();
}

// data/fortunes.h5 in the scratch folder: where configs/model/tiny.yaml looks.
void small_dataset() {
  static const bool done = [] {
    std::string text;
    for (int i = 0; i < 300; ++i) text += "The quick brown fox jumps over the lazy dog. ";
    write_file("corpus.txt", text);
    REQUIRE(shell(dtbench() + " prepare corpus.txt --out data/fortunes.h5").exit_code == 0);
    return true;
  }();
  (void)done;
}

const std::string kTiny = std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml";

// A one-step run of the tiny model; ENV goes in front of the command, LAUNCH before dtbench.
Outcome train(const std::string& results, const std::string& sets, const std::string& env = "",
              const std::string& launch = "") {
  small_dataset();
  return shell(env + " " + launch + " " + dtbench() + " train --config " + kTiny +
               " --set train.steps=1 --set train.val_every=0 --set train.threads=1 --set train.results=" + results +
               " " + sets);
}

std::string mpi_library() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int n = 0;
  MPI_Get_library_version(v, &n);
  std::string s(v);  // n may count the terminating NUL
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

std::string first_cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("model name")) return line.substr(line.find(": ") + 2);
  return "unknown CPU";
}

}  // namespace

TEST_CASE("result files record the build, MPI, OpenBLAS, CPU and the Slurm job", "[hpc]") {
  const Outcome plain = train("plain.h5", "");
  INFO(plain.out << plain.err);
  REQUIRE(plain.exit_code == 0);
  const dtb::h5::File f = dtb::h5::File::open_read((scratch() / "plain.h5").string());
  CHECK(f.attr_string("/", "mpi_library") == mpi_library());
  std::string blas = openblas_get_config();
  while (!blas.empty() && blas.back() == ' ') blas.pop_back();
  CHECK(f.attr_string("/", "openblas_config") == blas);
  CHECK(f.attr_string("/", "openblas_core") == std::string(openblas_get_corename()));
  CHECK(f.attr_string("/", "cpu_model") == first_cpu_model());
  CHECK_THAT(f.attr_string("/", "compiler"), Contains("GNU") || Contains("Clang"));
  CHECK_THAT(f.attr_string("/", "build_flags"), Contains("-O3"));  // the kernels' flags are named
  // ... with the CPU level DTB_ARCH asked for (a portable build must not say -march=native).
  const std::string march = DTB_EXPECTED_MARCH;
  if (march.empty()) CHECK_THAT(f.attr_string("/", "build_flags"), !Contains("-march="));
  else CHECK_THAT(f.attr_string("/", "build_flags"), Contains("(kernels: " + march + " "));
  CHECK(!f.attr_string("/", "build_type").empty());
  CHECK_FALSE(f.has_attr("/", "slurm_job_id"));  // no job: no Slurm fields

  // Inside a job the job's variables are recorded (the one-node Slurm test sees real ones).
  const std::string job =
      "SLURM_JOB_ID=4242 SLURM_JOB_NAME=dtb-pair SLURM_JOB_NODELIST='node[01-02]' SLURM_JOB_NUM_NODES=2 "
      "SLURM_NTASKS=8 SLURM_TASKS_PER_NODE='4(x2)'";
  const Outcome slurm = train("slurm.h5", "", job);
  INFO(slurm.out << slurm.err);
  REQUIRE(slurm.exit_code == 0);
  const dtb::h5::File g = dtb::h5::File::open_read((scratch() / "slurm.h5").string());
  CHECK(g.attr_string("/", "slurm_job_id") == "4242");
  CHECK(g.attr_string("/", "slurm_job_name") == "dtb-pair");
  CHECK(g.attr_string("/", "slurm_nodelist") == "node[01-02]");
  CHECK(g.attr_string("/", "slurm_nnodes") == "2");
  CHECK(g.attr_string("/", "slurm_ntasks") == "8");
  CHECK(g.attr_string("/", "slurm_tasks_per_node") == "4(x2)");
  CHECK_FALSE(g.has_attr("/", "slurm_array_task_id"));  // not an array job: left out
}

TEST_CASE("a run reports its DP bucket count, 25 MiB buckets by default as in PyTorch DDP", "[hpc]") {
  // The default: the tiny model's 3.2 MB of gradients fit one 25 MiB bucket.
  const Outcome one = train("default.h5", "");
  INFO(one.out << one.err);
  REQUIRE(one.exit_code == 0);
  const dtb::h5::File d = dtb::h5::File::open_read((scratch() / "default.h5").string());
  CHECK(d.attr_double("/", "dp_bucket_mb") == 25.0);
  CHECK(d.attr_int("/", "dp_buckets") == 1);

  // 1 MiB buckets on two DP ranks: ceil(4 N / 2^20) allreduces per step, said at the start.
  const Outcome two = train("dp2.h5", "--set parallel.dp=2 --set parallel.bucket_mb=1", "",
                            "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe "
                            "--mca mpi_yield_when_idle 1");
  INFO(two.out << two.err);
  REQUIRE(two.exit_code == 0);
  const dtb::h5::File f = dtb::h5::File::open_read((scratch() / "dp2.h5").string());
  const int64_t n = f.attr_int("/", "num_params");
  const auto expected = int64_t(std::ceil(double(n) * 4 / 1048576.0));
  CHECK(expected == 4);  // 0.8M parameters: 3.2 MB
  CHECK(f.attr_int("/", "dp_buckets") == expected);
  CHECK_THAT(two.out, Contains("DP buckets " + std::to_string(expected) + " of <= 1 MiB (parallel.bucket_mb)"));
  CHECK_THAT(one.out, !Contains("DP buckets"));  // one rank sends nothing
}

namespace {

// An experiment of two runs on 2 ranks, with TOP added to its top level.
std::string srun_experiment(const std::string& name, const std::string& top) {
  small_dataset();
  return write_file(name + ".yaml", "name: " + name + "\n" + top +
                                        "defaults: {model: " + kTiny + ", steps: 2}\n"
                                        "runs:\n"
                                        "  - name: dp2\n    layout: {dp: 2}\n"
                                        "  - name: coll2\n    kind: coll\n    ranks: 2\n    args: [-b, 4K, -e, 4K]\n");
}

// The dry run's launch lines inside a (pretend) Slurm allocation, ENV set.
Outcome srun_dry_run(const std::string& file, const std::string& env = "") {
  return shell("SLURM_JOB_ID=1 " + env + " " + dtbench() + " run " + file + " --dry-run --out dry");
}

}  // namespace

TEST_CASE("the srun line takes its MPI plugin and options from the experiment and the environment", "[hpc]") {
  const std::string plain = srun_experiment("plain", "");
  const std::string pmi2 = srun_experiment("pmi2", "srun_mpi: pmi2\nsrun_args: [--cpu-bind=cores, --exclusive]\n");
  const std::string shasta = "DTB_SRUN_MPI=cray_shasta DTB_SRUN_ARGS='--network=single_node_vni  --hint=nomultithread'";
  const std::pair<Outcome, std::string> cases[] = {
      // Nothing said: PMIx, as Debian's Open MPI needs, and a failed rank ends the step.
      {srun_dry_run(plain), "srun --mpi=pmix -n 2 --kill-on-bad-exit=1 " + dtbench() + " train"},
      {srun_dry_run(pmi2), "srun --mpi=pmi2 -n 2 --kill-on-bad-exit=1 --cpu-bind=cores --exclusive " + dtbench() + " coll"},
      // The environment wins over the file for the plugin; its options come last (srun: the last wins).
      {srun_dry_run(pmi2, shasta), "srun --mpi=cray_shasta -n 2 --kill-on-bad-exit=1 --cpu-bind=cores --exclusive "
                                   "--network=single_node_vni --hint=nomultithread " + dtbench() + " train"},
      {srun_dry_run(plain, "DTB_SRUN_MPI=pmix_v4"), "srun --mpi=pmix_v4 -n 2 --kill-on-bad-exit=1 " + dtbench()},
      // default: no --mpi, so slurm.conf's MpiDefault (or SLURM_MPI_TYPE) decides.
      {srun_dry_run(plain, "DTB_SRUN_MPI=default"), "srun -n 2 --kill-on-bad-exit=1 " + dtbench() + " coll"},
  };
  for (const auto& [o, line] : cases) {
    INFO(o.out << o.err);
    CHECK(o.exit_code == 0);
    CHECK_THAT(o.out, Contains(line));
  }
  // Outside Slurm the file's srun settings change nothing: mpirun as before.
  const Outcome local = shell(dtbench() + " run " + pmi2 + " --dry-run --out dry");
  CHECK_THAT(local.out, Contains(" -np 2 --oversubscribe"));
  CHECK_THAT(local.out, !Contains("cpu-bind"));

  // A plugin srun does not have: one line naming where it came from and what is allowed.
  const std::string bad = srun_experiment("bad", "srun_mpi: pmix3\n");
  dtb::test::expect_usage_error(srun_dry_run(bad), "run bad.yaml", {"bad.yaml:2", "srun_mpi 'pmix3'", "pmi2, cray_shasta"});
  dtb::test::expect_usage_error(srun_dry_run(plain, "DTB_SRUN_MPI=openmpi"), "run plain.yaml (DTB_SRUN_MPI=openmpi)",
                                {"DTB_SRUN_MPI 'openmpi'", "allowed: pmix"});
}
