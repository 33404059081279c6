// dtbench run and dtbench report end to end (issue 5): experiment files checked before
// anything starts; runs launched through mpirun, a failed run reported while the others
// run; results never overwritten; every dataset results/README.md documents present with
// its documented shape; the report byte-identical when regenerated; unreadable files
// answered with one line.
#include <catch2/catch.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "dtbench_runner.hpp"
#include "exp/progress.hpp"
#include "h5file.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

using dtb::test::Outcome;
using dtb::test::slurp;

// A folder of this test process, removed when it ends.
fs::path scratch() {
  static const dtb::test::ScratchDir dir("test_exp");
  return dir.path;
}

// Shell command lines and dtbench run in the scratch folder (relative paths land there).
Outcome shell(const std::string& command) { return dtb::test::run_shell(command, scratch(), scratch()); }
Outcome dtbench(const std::string& args) { return dtb::test::run_dtbench(args, scratch(), scratch()); }

std::string write_file(const std::string& name, const std::string& text) {
  const fs::path p = scratch() / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

const std::string kSource = DTB_SOURCE_DIR;
const std::string kTiny = kSource + "/configs/model/tiny.yaml";

std::string small_dataset() {
  static const std::string path = [] {
    std::string text;
    for (int i = 0; i < 300; ++i) text += "The quick brown fox jumps over the lazy dog. ";
    const std::string src = write_file("corpus.txt", text);
    REQUIRE(dtbench("prepare " + src + " --out small.h5").exit_code == 0);
    return (scratch() / "small.h5").string();
  }();
  return path;
}

// An experiment with two good runs (a parallel train run and a collective benchmark, both
// on 2 ranks under mpirun) and one that fails while running: it is stopped at its timeout
// (every input of a run is checked before any starts, so a run cannot fail on one).
std::string experiment(const std::string& name, const std::string& extra_runs = "") {
  return write_file(name + ".yaml",
                    "name: " + name + "\n"
                    "description: test experiment\n"
                    "defaults:\n"
                    "  model: " + kTiny + "\n"
                    "  steps: 4\n"
                    "  clock: virtual\n"
                    "  device: h100\n"
                    "  set: {data.path: " + small_dataset() + ", train.threads: 1, train.log_every: 1, "
                    "train.val_every: 2, train.val_batches: 2}\n"
                    "runs:\n"
                    "  - name: dp2\n"
                    "    layout: {dp: 2}\n"
                    "    net: centralized-25g\n"
                    "  - name: slow\n"
                    "    kind: coll\n"
                    "    ranks: 2\n"
                    "    net: decentralized-1g\n"
                    "    clock: wall\n"
                    "    timeout: 1\n"
                    "    args: [-b, 4K, -e, 4K, -n, 1000]\n"
                    "  - name: coll2\n"
                    "    kind: coll\n"
                    "    ranks: 2\n"
                    "    net: decentralized-1g\n"
                    "    args: [-b, 1K, -e, 4K, -f, 2, -n, 2, -w, 1]\n" + extra_runs);
}

// The experiment above, run once per test process; its output and exit code.
const Outcome& ran() {
  static const Outcome o = dtbench("run " + experiment("exp") + " --out res");
  return o;
}

// dtbench ARGS refused before anything ran: exit code 2, one line naming every piece.
void expect_refused(const std::string& args, const std::vector<std::string>& pieces) {
  dtb::test::expect_usage_error(dtbench(args), args, pieces);
}

std::string bad_experiment(const std::string& runs) {
  return write_file("bad.yaml", "defaults:\n  model: " + kTiny + "\n  set: {data.path: " + small_dataset() +
                                    "}\nruns:\n" + runs);
}

}  // namespace

TEST_CASE("experiment files are checked before any run starts", "[exp]") {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"  - name: a\n    stepz: 3\n", {"bad.yaml:6", "unknown run field 'stepz'"}},
      {"  - name: a\n  - name: a\n", {"bad.yaml:6", "'a' is used twice"}},
      {"  - name: a b\n", {"bad.yaml:5", "a run needs a 'name'"}},
      {"  - name: a\n    kind: sim\n", {"'kind': expected train or coll"}},
      {"  - name: a\n    layout: {dp: 2}\n    ranks: 3\n", {"run 'a'", "ranks 3", "is 2"}},
      {"  - name: a\n    net: moon-1g\n", {"bad.yaml:6", "run 'a'", "no such network profile"}},
      {"  - name: a\n    set: {optim.lrr: 1}\n", {"run 'a'", "unknown key 'optim.lrr'", "optim.lr"}},
      {"  - name: a\n    layout: {tp: 3}\n", {"run 'a'", "parallel.tp", "must divide model.n_head"}},
      {"  - name: a\n    kind: coll\n    algo: nope\n", {"bad.yaml:5", "run 'a'", "--algo 'nope'", "ring"}},
      // `args` go through dtbench coll's own parser and checks, for the run's world size.
      {"  - name: a\n    kind: coll\n    args: [--no-such-option]\n", {"run 'a'", "no-such-option"}},
      {"  - name: a\n    kind: coll\n    args: [-b, 4X]\n", {"run 'a'", "-b/--minbytes '4X'", "64K"}},
      {"  - name: a\n    kind: coll\n    args: [-b, 4M, -e, 1K]\n", {"run 'a'", "must not exceed"}},
      {"  - name: a\n    kind: coll\n    ranks: 2\n    op: broadcast\n    algo: tree\n    args: [--root, 2]\n",
       {"run 'a'", "--root 2: must be a rank in [0, 1]"}},
      {"  - name: a\n    kind: coll\n    ranks: 3\n    algo: ps\n    args: [--servers, 4]\n",
       {"run 'a'", "--servers 4: must be in [1, 3]"}},
      {"  - name: a\n    kind: coll\n    args: [--net, configs/net/nowhere.yaml]\n", {"run 'a'", "nowhere.yaml"}},
      {"  - name: a\n    kind: coll\n    args: [--help]\n", {"run 'a'", "--help", "leave it out"}},
      {"  - name: a\n    kind: coll\n    args: [--out, x.h5]\n", {"--out is set by dtbench run"}},
      {"  - name: a\n    kind: coll\n    model: x.yaml\n", {"'model' is not a field of coll runs"}},
      {"  - name: a\n    layout: {dp: 2}\n    launcher: direct\n", {"launcher direct", "2 ranks"}},
      {"  - name: a\n    set: {data.path: /nonexistent.h5}\n", {"run 'a'", "/nonexistent.h5", "dtbench prepare"}},
      {"  - name: a\n    set: {train.results: x.h5}\n", {"train.results is set by dtbench run"}},
      {"  - name: a\n    steps: 3\n    steps: 4\n", {"bad.yaml:7", "key 'runs[0].steps' is given twice (first at line 6)"}},
  };
  for (const auto& [runs, pieces] : cases) {
    INFO(runs);
    expect_refused("run " + bad_experiment(runs) + " --out never", pieces);
  }
  CHECK_FALSE(fs::exists(scratch() / "never"));
  expect_refused("run " + bad_experiment("  - name: a\n") + " --only 5", {"--only '5'", "0..0"});
  expect_refused("run no-such.yaml", {"no-such.yaml: no such experiment file"});
  expect_refused("run " + write_file("list.yaml", "- 1\n"), {"expected an experiment"});
}

TEST_CASE("a dry run prints the launch commands and starts nothing", "[exp]") {
  const std::string file = experiment("dry");
  const Outcome o = dtbench("run " + file + " --out dry --dry-run");
  INFO(o.out << o.err);
  CHECK(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("[run 1/3] dp2: train, 2 ranks, 4 steps"));
  CHECK_THAT(o.out, Contains(" -np 2 --oversubscribe --mca mpi_yield_when_idle 1"));  // the build's launcher (Open MPI)
  CHECK_THAT(o.out, Contains("--set parallel.dp=2"));
  CHECK_THAT(o.out, Contains("--set device.peak_gflops=989400 --set device.efficiency=0.4"));
  CHECK_THAT(o.out, Contains("coll --net "));
  CHECK_FALSE(fs::exists(scratch() / "dry"));
  // Inside a Slurm allocation the launcher is srun with PMIx; one run can be picked by index.
  const Outcome slurm = shell("SLURM_JOB_ID=1 " + std::string(DTB_BINARY) + " run " + file + " --only 2 --dry-run");
  CHECK_THAT(slurm.out, Contains("srun --mpi=pmix -n 2 --kill-on-bad-exit=1"));
  CHECK_THAT(slurm.out, Contains("[run 1/1] coll2"));
  const Outcome direct = dtbench("run " + file + " --only dp2 --launcher direct --dry-run");
  CHECK_THAT(direct.err, Contains("launcher direct starts one process"));
}

TEST_CASE("an experiment runs every run, reports the failed one, and never overwrites", "[exp]") {
  const Outcome& o = ran();
  INFO(o.out << o.err);
  CHECK(o.exit_code == 1);  // slow failed
  CHECK_THAT(o.out, Contains("[1/3 dp2] step     4/4"));
  CHECK_THAT(o.out, Contains("[run 2/3] slow: coll, 2 ranks, 1 size"));
  CHECK_THAT(o.out, Contains("[run 3/3] coll2: coll, 2 ranks, 3 sizes"));
  // The first run's lines have no pace to go by for the coll runs to come.
  CHECK(std::regex_search(o.out, std::regex(R"(\[1/3 dp2\] step     1/4 \|.* \| ETA \d+s \+ 2 runs not yet timed\n)")));
  CHECK_THAT(o.out, Contains("[run 2/3] slow: FAILED after"));
  CHECK_THAT(o.out, Contains("timed out after 1s"));
  CHECK_THAT(o.out, Contains("3 runs: 2 ok, 1 failed: slow"));
  CHECK_THAT(o.out, Contains("report: res/report.md"));
  CHECK(fs::exists(scratch() / "res/dp2.h5"));
  CHECK(fs::exists(scratch() / "res/coll2.h5"));
  CHECK_FALSE(fs::exists(scratch() / "res/slow.h5"));
  // No rank of it is left ([c]: the pattern does not match the shell that runs pgrep; the
  // folder: other test processes run this experiment at the same time, each in its own).
  CHECK(shell("for p in $(pgrep -f '[c]oll --net .*--out res/slow.h5'); do "
              "[ \"$(readlink /proc/$p/cwd)\" = \"$PWD\" ] && exit 0; done; exit 1")
            .exit_code == 1);
  CHECK(slurp(scratch() / "res/experiment.yaml") == slurp(scratch() / "exp.yaml"));
  // Each log ends with the runner's verdict, which the report reads.
  CHECK(slurp(scratch() / "res/dp2.log").ends_with("\n# dtbench run: ok\n"));
  CHECK(slurp(scratch() / "res/slow.log").ends_with("\n# dtbench run: FAILED: timed out after 1s\n"));

  const auto before = fs::last_write_time(scratch() / "res/dp2.h5");
  expect_refused("run exp.yaml --out res", {"res/dp2.h5 already exists", "--skip-existing"});
  const Outcome again = dtbench("run exp.yaml --out res --skip-existing --no-report");
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.out, Contains("kept (--skip-existing): res/dp2.h5"));
  CHECK_THAT(again.out, Contains("1 run: 0 ok, 1 failed: slow"));
  CHECK(fs::last_write_time(scratch() / "res/dp2.h5") == before);
  // Another version of the experiment does not mix its results into this folder.
  write_file("exp.yaml", slurp(scratch() / "exp.yaml") + "  - name: more\n    kind: coll\n");
  expect_refused("run exp.yaml --out res --skip-existing", {"another version"});
}

namespace {

// One documented object: `/steps/loss` (a dataset) or `@num_params` / `format` (a root
// attribute), with the shape text of its row ("(S,) float64", "scalar string", "int").
struct Documented {
  std::string path, shape;
  bool attribute;
};

// The objects of the README section whose heading contains HEADING. A row's first cell
// may list several (`/rows/bytes`, `/rows/count`; `/points/a_s`, `b_s`: same folder). Every
// dataset row must give its shape; check_documented fails on one that does not.
std::vector<Documented> documented(const std::string& heading) {
  std::istringstream in(slurp(kSource + "/results/README.md"));
  std::vector<Documented> out;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("## ")) inside = line.find(heading) != std::string::npos;
    if (!inside || !line.starts_with("| `")) continue;
    const size_t bar1 = line.find(" | "), bar2 = line.find(" | ", bar1 + 3);
    const std::string names = line.substr(2, bar1 - 2);
    const std::string shape = line.substr(bar1 + 3, bar2 - bar1 - 3);
    std::string folder;
    const std::regex item("`([^`]+)`");
    for (auto it = std::sregex_iterator(names.begin(), names.end(), item); it != std::sregex_iterator(); ++it) {
      std::string name = (*it)[1];
      if (name.starts_with("@")) {
        out.push_back({name.substr(1), shape, true});
        continue;
      }
      if (name.starts_with("/")) folder = name.substr(0, name.rfind('/') + 1);
      else if (!folder.empty()) name = folder + name;
      out.push_back({name, shape, !name.starts_with("/")});
    }
  }
  return out;
}

// Checks every documented object of SECTION in FILE. KNOWN gives the length of named
// dimensions (S steps, ...); any other dimension name must have one length throughout.
void check_documented(const std::string& file, const std::string& section, std::map<std::string, uint64_t> known) {
  const dtb::h5::File f = dtb::h5::File::open_read(file);
  const std::vector<Documented> items = documented(section);
  REQUIRE(items.size() >= 3);
  for (const Documented& d : items) {
    INFO(file << ": " << d.path << " documented as " << d.shape);
    if (d.attribute) {
      CHECK(f.has_attr("/", d.path));
      continue;
    }
    REQUIRE(f.exists(d.path.substr(1)));
    const std::vector<uint64_t> shape = f.shape(d.path.substr(1));
    if (d.shape.starts_with("scalar")) {
      CHECK(shape.empty());
      CHECK(f.dtype(d.path.substr(1)) == dtb::h5::DType::kString);
      continue;
    }
    std::smatch m;
    REQUIRE(std::regex_search(d.shape, m, std::regex(R"(^\(([^)]*)\))")));
    std::vector<std::string> dims;
    std::istringstream parts(m[1].str());
    for (std::string dim; std::getline(parts, dim, ',');)
      if (dim.find_first_not_of(' ') != std::string::npos) dims.push_back(dim.substr(dim.find_first_not_of(' ')));
    REQUIRE(shape.size() == dims.size());
    for (size_t i = 0; i < dims.size(); ++i) {
      auto [it, fresh] = known.emplace(dims[i], shape[i]);
      CHECK(it->second == shape[i]);
    }
  }
}

}  // namespace

TEST_CASE("result files hold every documented dataset with its documented shape", "[exp]") {
  REQUIRE(ran().exit_code == 1);
  const std::string train = (scratch() / "res/dp2.h5").string(), coll = (scratch() / "res/coll2.h5").string();
  check_documented(train, "Common root attributes", {});
  // The per-rank table: one row per rank and step (2 ranks x 4 steps).
  check_documented(train, "Training runs", {{"S", 4}, {"V", 2}, {"R·S", 8}});
  check_documented(coll, "Common root attributes", {});
  check_documented(coll, "Collective benchmarks", {{"R", 3}});  // 1K, 2K, 4K
  // Traffic by link class: dp2 is on centralized-25g (one site), coll2 on decentralized-1g (a
  // site per rank): a 2-rank ring allreduce of n bytes sends n from each rank, 2n in all.
  const dtb::h5::File t = dtb::h5::File::open_read(train), c = dtb::h5::File::open_read(coll);
  for (int64_t b : t.read<int64_t>("ranks/bytes_inter")) CHECK(b == 0);
  CHECK(c.read<int64_t>("rows/bytes_intra") == std::vector<int64_t>{0, 0, 0});
  CHECK(c.read<int64_t>("rows/bytes_inter") == std::vector<int64_t>{2048, 4096, 8192});
}

TEST_CASE("the report names every run and is the same bytes when regenerated", "[exp]") {
  REQUIRE(ran().exit_code == 1);
  const fs::path dir = scratch() / "res";
  const std::string md = slurp(dir / "report.md");
  for (const char* piece : {"# exp", "| dp2 ", "| DP2 ", "centralized-25g", "| coll2 ", "decentralized-1g", "1K-4K",
                            "![Training loss per run](loss.svg)", "| dp2.h5 "})
    CHECK_THAT(md, Contains(piece));
  // The run stopped at its timeout is listed as failed, with why.
  CHECK(std::regex_search(md, std::regex(R"(\| slow +\| failed +\| timed out after 1s +\|)")));
  std::map<fs::path, std::string> first;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() != ".h5" && e.path().extension() != ".log") first[e.path()] = slurp(e.path());
  const Outcome o = dtbench("report res");
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("| dp2 "));  // the same table on the terminal
  for (const auto& [path, text] : first) {
    INFO(path);
    CHECK(slurp(path) == text);
  }
}

// Without a launcher dtbench train is a world of one: the same trainer, clock and device
// model as any run, so the report shows its per-rank record and MFU like any other's.
TEST_CASE("a run without a launcher is a world of one, reported like any run", "[exp]") {
  const std::string file = experiment("plain", "  - name: plain\n    launcher: direct\n");
  const Outcome o = dtbench("run " + file + " --only plain --out plain");
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK(std::regex_search(o.out, std::regex(R"(\| plain +\| 1 rank +\| unshaped +\| virtual +\| +[0-9.]+ us +\| +[0-9.]+M +\| +[0-9.]+% \|)")));
}

TEST_CASE("unreadable and foreign files get one clear line", "[exp]") {
  REQUIRE(ran().exit_code == 1);
  // A folder with a good result and three bad files: warnings, and the report of the rest.
  fs::create_directories(scratch() / "mixed");
  fs::copy_file(scratch() / "res/dp2.h5", scratch() / "mixed/dp2.h5", fs::copy_options::overwrite_existing);
  write_file("mixed/garbage.h5", "this is not HDF5\n");
  const std::string whole = slurp(scratch() / "res/coll2.h5");
  write_file("mixed/cut.h5", whole.substr(0, whole.size() / 2));
  fs::copy_file(small_dataset(), scratch() / "mixed/tokens.h5", fs::copy_options::overwrite_existing);
  const Outcome o = dtbench("report mixed");
  INFO(o.out << o.err);
  CHECK(o.exit_code == 0);
  CHECK(std::count(o.err.begin(), o.err.end(), '\n') == 3);
  CHECK_THAT(o.err, Contains("garbage.h5: not an HDF5 file"));
  CHECK_THAT(o.err, Contains("cut.h5: "));
  CHECK_THAT(o.err, Contains("tokens.h5: not a dtbench result"));
  CHECK_THAT(o.out, Contains("| dp2 "));
  CHECK_THAT(slurp(scratch() / "mixed/report.md"), Contains("Skipped"));
  // Nothing readable at all: exit 2, one line.
  fs::create_directories(scratch() / "foreign");
  fs::copy_file(small_dataset(), scratch() / "foreign/tokens.h5", fs::copy_options::overwrite_existing);
  const Outcome none = dtbench("report foreign");
  CHECK(none.exit_code == 2);
  CHECK_THAT(none.err, Contains("no readable dtbench result"));
  CHECK_THAT(none.err, Contains("not a dtbench result"));
  expect_refused("report no-such-folder", {"no-such-folder: not a folder"});
}

TEST_CASE("the local job script builds the pair runs from RANKS, PP and TP", "[exp]") {
  const std::string env = "DTBENCH=" + std::string(DTB_BINARY) + " OUT=" + (scratch() / "pair").string();
  const std::string script = " " + kSource + "/jobs/local/pair.sh";
  const std::string set = " --set data.path=" + small_dataset() + " --dry-run";
  const Outcome dp = shell(env + script + " decentralized" + set);
  INFO(dp.out << dp.err);
  CHECK(dp.exit_code == 0);
  CHECK_THAT(dp.out, Contains("layout: DP=4 PP=1 TP=1 (4 ranks)"));
  CHECK_THAT(dp.out, Contains(" -np 4 "));
  CHECK_THAT(dp.out, Contains("decentralized-1g.yaml"));
  CHECK_THAT(dp.out, !Contains("centralized-25g.yaml"));
  const Outcome pp = shell(env + " RANKS=8 PP=2" + script + " centralized" + set);
  CHECK_THAT(pp.out, Contains("layout: DP=4 PP=2 TP=1 (8 ranks), 4 micro-batch(es)"));
  CHECK_THAT(pp.out, Contains("--set parallel.microbatches=4"));
  CHECK_THAT(pp.out, !Contains("decentralized-1g.yaml"));
  // No run named: both, the baseline first.
  const Outcome both = shell(env + script + set);
  CHECK(both.exit_code == 0);
  const size_t central = both.out.find("centralized-25g.yaml"), decentral = both.out.find("decentralized-1g.yaml");
  CHECK(central != std::string::npos);
  CHECK(decentral != std::string::npos);
  CHECK(central < decentral);
  const Outcome bad = shell(env + " RANKS=3 PP=2" + script + " centralized" + set);
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Contains("3 ranks do not split into PP x TP = 2 x 1"));
  const Outcome unknown = shell(env + script + " central" + set);
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Contains("pair.sh: unknown run 'central'"));
}


TEST_CASE("the ETA: the current run at its own pace, the runs to come at their finished kin's", "[exp]") {
  using dtb::exp::RunKind;
  // Two train runs of 60 steps, then a coll run of 4 buffer sizes, on the virtual clock; a
  // wall-clock train run last. Seconds, by hand.
  dtb::exp::Progress p({{RunKind::kTrain, "virtual", 60},
                        {RunKind::kTrain, "virtual", 60},
                        {RunKind::kColl, "virtual", 4},
                        {RunKind::kTrain, "wall", 10}});
  p.start_run(0, 0.0);
  CHECK(p.text(0.5) == "ETA ?");  // nothing printed, nothing finished: no pace at all
  p.mark(5, 2.0);                  // one line: (2.0 s, start-up included) / 5 steps x 55 left
  CHECK(p.eta(2.0).seconds == Approx(22.0));
  CHECK(p.eta(2.0).unknown_runs == 3);  // run 1 too: none of its kin has finished
  CHECK(p.text(2.0) == "ETA 22s + 3 runs not yet timed");
  p.mark(10, 2.5);  // two lines: 0.5 s per 5 steps, 50 left = 5 s, less what passed since
  CHECK(p.eta(2.5).seconds == Approx(5.0));
  CHECK(p.eta(3.0).seconds == Approx(4.5));
  p.mark(60, 7.5);
  p.finish_run(8.0, true);  // 8 s for 60 steps: the virtual-clock train pace
  p.start_run(1, 8.0);
  CHECK(p.eta(8.0).seconds == Approx(8.0));  // the whole of run 1 at run 0's pace
  CHECK(p.eta(8.0).unknown_runs == 2);       // the coll run, and the train run on the wall clock
  CHECK(p.eta(9.0).seconds == Approx(7.0));
  p.mark(10, 10.0);  // its own pace: 2 s / 10 steps x 50 = 10 s
  CHECK(p.eta(10.0).seconds == Approx(10.0));
  p.finish_run(114.0, false);  // failed (stopped at a timeout): its 106 s are no pace
  CHECK(p.eta(114.0).seconds == 0.0);
  CHECK(p.eta(114.0).unknown_runs == 2);
  p.start_run(2, 114.0);
  CHECK(p.text(114.0) == "ETA ?");
  p.mark(1, 115.0);  // 1 s per size, 3 left
  CHECK(p.text(115.0) == "ETA 3s + 1 run not yet timed");
  CHECK(p.text(120.0) == "ETA 0s + 1 run not yet timed");  // late: never negative
  p.finish_run(120.0, true);
  p.start_run(3, 120.0);
  p.mark(5, 130.0);
  CHECK(p.text(130.0) == "ETA 10s");
  CHECK(dtb::exp::duration_text(65) == "1m05s");
  CHECK(dtb::exp::duration_text(3725) == "1h02m");
}

// ------------------------------------------------------------------ the report, golden

namespace {

// A train result written by hand (the datasets results/README.md documents), so that every
// figure of the report is known in advance: the step takes STEP_MS on every step and rank,
// made of forward 20%, backward 50%, optimizer 5%, DP exposed 15%, other comm 10%; the DP
// sync takes twice its exposed part (half hidden); each rank sends 1000 B per step inside
// sites and INTER_B across (or INTER_BY_STEP[step] where given). STRATEGY: more config
// text (strategy: {...}); VAL: the validations (step, loss).
struct HandRun {
  std::string name, net, codec = "none";
  double step_ms = 2;
  int steps = 4, recorded = 4;
  double inter_b = 0;
  std::vector<double> inter_by_step = {};
  std::string strategy = "";
  std::vector<std::pair<int64_t, double>> val = {{2, 3.5}};
};

void write_hand_train(const fs::path& dir, const HandRun& r) {
  dtb::h5::File f = dtb::h5::File::create((dir / (r.name + ".h5")).string());
  f.set_attr("/", "format", std::string("dtbench-result"));
  f.set_attr("/", "kind", std::string("train"));
  f.set_attr("/", "git_commit", std::string("abc1234"));
  f.set_attr("/", "host", std::string("hand"));
  f.set_attr("/", "created_utc", std::string("2026-12-06T00:00:00Z"));
  f.set_attr("/", "flops_per_token", 1e6);
  f.set_attr("/", "mfu_peak_gflops", 1000.0);
  f.write_string("config", "parallel: {dp: 2}\ntrain: {batch_size: 8, seq_len: 64, steps: " + std::to_string(r.steps) +
                               "}\nnet: {profile: configs/net/" + r.net + ".yaml, clock: virtual, codec: " + r.codec +
                               "}\n" + r.strategy);
  std::vector<int64_t> step;
  std::vector<double> loss, time_ms;
  for (int i = 0; i < r.recorded; ++i) step.push_back(i), loss.push_back(4.0 - i), time_ms.push_back(r.step_ms);
  f.write<int64_t>("steps/step", step);
  f.write<double>("steps/loss", loss);
  f.write<double>("steps/time_ms", time_ms);
  std::vector<int64_t> val_step;
  std::vector<double> val_loss;
  for (const auto& [at, l] : r.val) val_step.push_back(at), val_loss.push_back(l);
  f.write<int64_t>("val/step", val_step);
  f.write<double>("val/loss", val_loss);
  const size_t rows = size_t(2 * r.recorded);  // 2 ranks, rank-major
  std::vector<int64_t> rank_of, step_of;
  std::vector<double> inter;
  for (int rank = 0; rank < 2; ++rank)
    for (int i = 0; i < r.recorded; ++i)
      rank_of.push_back(rank), step_of.push_back(i),
          inter.push_back(r.inter_by_step.empty() ? r.inter_b : r.inter_by_step[size_t(i)]);
  f.write<int64_t>("ranks/rank", rank_of);
  f.write<int64_t>("ranks/step", step_of);
  f.write<double>("ranks/bytes_inter", inter);
  const double s = r.step_ms / 1e3;
  const std::map<std::string, double> parts = {
      {"forward", 0.2 * s}, {"backward", 0.5 * s}, {"optimizer", 0.05 * s}, {"tp_comm", 0}, {"pp_comm", 0},
      {"dp_exposed", 0.15 * s}, {"dp_total", 0.3 * s}, {"other_comm", 0.1 * s}, {"bubble", 0}, {"harness", 0},
      {"idle", 0}, {"step_time", s}, {"bytes_intra", 1000}};
  for (const auto& [name, v] : parts) f.write<double>("ranks/" + name, std::vector<double>(rows, v));
  f.commit();
}

void write_hand_coll(const fs::path& dir) {
  dtb::h5::File f = dtb::h5::File::create((dir / "ar.h5").string());
  f.set_attr("/", "format", std::string("dtbench-result"));
  f.set_attr("/", "kind", std::string("coll"));
  for (const char* a : {"op:allreduce", "algo:ring", "codec:none", "clock:virtual", "net_name:centralized-25g"}) {
    const std::string kv = a;
    f.set_attr("/", kv.substr(0, kv.find(':')), kv.substr(kv.find(':') + 1));
  }
  f.set_attr("/", "world_size", int64_t(2));
  f.write<double>("rows/bytes", std::vector<double>{1024, 4096});
  f.write<double>("rows/time_us", std::vector<double>{10, 20});
  f.write<double>("rows/busbw_GBps", std::vector<double>{0.1024, 0.2048});
  f.commit();
}

// The folder: central (2 ms), dec (its twin on decentralized-1g: 200 ms), dec-sign (a codec
// run with no twin on centralized-25g; `baseline: central`: 50 ms), short (killed after 2
// of its 4 steps), crashed (a log with an error and no verdict: the runner was killed),
// never (neither log nor result), running (a log with no verdict yet), ar (a coll result).
fs::path hand_folder() {
  const fs::path dir = scratch() / "golden";
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_hand_train(dir, {"central", "centralized-25g"});
  write_hand_train(dir, {"dec", "decentralized-1g", "none", 200, 4, 4, 1000});
  write_hand_train(dir, {"dec-sign", "decentralized-1g", "sign", 50, 4, 4, 1000});
  write_hand_train(dir, {"short", "decentralized-1g", "none", 200, 4, 2, 1000});
  write_hand_coll(dir);
  write_file("golden/experiment.yaml",
             "name: golden\ndefaults: {model: tiny.yaml}\nruns:\n"
             "  - {name: central}\n  - {name: dec}\n  - {name: dec-sign, baseline: central}\n"
             "  - {name: short, baseline: central}\n  - {name: crashed}\n  - {name: never}\n  - {name: running}\n"
             "  - {name: ar, kind: coll}\n");
  write_file("golden/short.log", "$ mpirun ...\nstep 2/4 | loss 3\n# dtbench run: FAILED: killed by signal 9\n");
  write_file("golden/crashed.log", "$ mpirun ...\nerror: rank 1: something broke\n");
  write_file("golden/running.log", "$ mpirun ...\nstep     1/4 | loss 4\n");
  return dir;
}

// The lines of TEXT from the one starting with FIRST up to the first empty line.
std::string block(const std::string& text, const std::string& first) {
  const size_t at = text.find(first);
  if (at == std::string::npos) return "(no block starting with " + first + ")";
  return text.substr(at, text.find("\n\n", at) - at + 1);
}

std::vector<std::vector<std::string>> read_csv(const fs::path& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(slurp(path));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells{""};
    bool quoted = false;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') cells.back() += '"', ++i;
      else if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) cells.emplace_back();
      else cells.back() += c;
    }
    rows.push_back(cells);
  }
  return rows;
}

}  // namespace

TEST_CASE("the report of a hand-made folder: tables, baselines, unfinished runs, figures", "[exp][report]") {
  const fs::path dir = hand_folder();
  const Outcome o = dtbench("report golden --csv");
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  const std::string md = slurp(dir / "report.md");
  // By hand: central's step 2 ms; 512 tokens / 2 ms = 256k tokens/s; MFU = 1e6 FLOP x 256k
  // / (2 ranks x 1 TFLOP/s) = 12.8%; exposed = DP 15% + other 10% of the step = 500 us, 25%;
  // hidden DP = 30% - 15% = 300 us; sent = 2 ranks x 1000 B. dec is central's twin on
  // decentralized-1g (100x); dec-sign has no twin (its codec differs) but names central
  // (25x); short names central and stopped after 2 of its 4 steps (final loss 3).
  CHECK(block(md, "| run                | layout") ==
        "| run                | layout | network          | clock   | step time | tokens/s |    MFU | exposed comm | "
        "exposed share | hidden DP | sent/step | across sites/step | slowdown | baseline | final loss | final val loss |\n"
        "| :----------------- | :----- | :--------------- | :------ | --------: | -------: | -----: | -----------: | "
        "------------: | --------: | --------: | ----------------: | -------: | :------- | ---------: | -------------: |\n"
        "| central            | DP2    | centralized-25g  | virtual |      2 ms |     256k |  12.8% |       500 us | "
        "        25.0% |    300 us |      2 kB |               0 B |    1.00x | central  |     1.0000 |         3.5000 |\n"
        "| dec                | DP2    | decentralized-1g | virtual |    200 ms |    2.56k | 0.128% |        50 ms | "
        "        25.0% |     30 ms |      4 kB |              2 kB |  100.00x | central  |     1.0000 |         3.5000 |\n"
        "| dec-sign           | DP2    | decentralized-1g | virtual |     50 ms |    10.2k | 0.512% |      12.5 ms | "
        "        25.0% |    7.5 ms |      4 kB |              2 kB |   25.00x | central  |     1.0000 |         3.5000 |\n"
        "| short (incomplete) | DP2    | decentralized-1g | virtual |    200 ms |    2.56k | 0.128% |        50 ms | "
        "        25.0% |     30 ms |      4 kB |              2 kB |  100.00x | central  |     3.0000 |         3.5000 |\n");
  // Unfinished runs, each with the reason its folder gives: the runner's verdict, the
  // child's last error line, nothing at all, a log still growing.
  CHECK(block(md, "| run     | status") ==
        "| run     | status     | why                                                                               |\n"
        "| :------ | :--------- | :-------------------------------------------------------------------------------- |\n"
        "| short   | incomplete | killed by signal 9 (its result stops after step 2 of 4)                           |\n"
        "| crashed | failed     | error: rank 1: something broke (no verdict in its log: the runner was stopped)    |\n"
        "| never   | not run    | no result and no log in this folder                                               |\n"
        "| running | unfinished | no result and no verdict in running.log: still running, or the runner was stopped |\n");
  CHECK(block(md, "| run      | forward") ==
        "| run      | forward | backward | optimizer | TP comm | PP comm | DP comm (exposed) | other comm | "
        "pipeline bubble | harness | idle |   step |\n"
        "| :------- | ------: | -------: | --------: | ------: | ------: | ----------------: | ---------: | "
        "--------------: | ------: | ---: | -----: |\n"
        "| central  |  400 us |     1 ms |    100 us |     0 s |     0 s |            300 us |     200 us | "
        "            0 s |     0 s |  0 s |   2 ms |\n"
        "| dec      |   40 ms |   100 ms |     10 ms |     0 s |     0 s |             30 ms |      20 ms | "
        "            0 s |     0 s |  0 s | 200 ms |\n"
        "| dec-sign |   10 ms |    25 ms |    2.5 ms |     0 s |     0 s |            7.5 ms |       5 ms | "
        "            0 s |     0 s |  0 s |  50 ms |\n"
        "| short    |   40 ms |   100 ms |     10 ms |     0 s |     0 s |             30 ms |      20 ms | "
        "            0 s |     0 s |  0 s | 200 ms |\n");
  CHECK_THAT(md, Contains("| ar  | allreduce | ring | none  | centralized-25g | virtual |     2 | 1K-4K |          20 us |"
                          "      0.205 GB/s |   0.205 GB/s |\n"));
  CHECK_THAT(o.out, Contains("| crashed | failed     | error: rank 1: something broke "));
  CHECK_THAT(o.out, Contains("| running | unfinished | no result and no verdict in running.log"));  // and on the terminal
  // Figures: SVG and PNG of each, their scripts beside them, and no others.
  std::set<std::string> scripts;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".gp") scripts.insert(e.path().stem().string());
  CHECK(scripts == std::set<std::string>{"breakdown", "breakdown-share", "busbw", "loss", "loss-time", "val-loss-time"});
  for (const std::string& name : scripts) {
    INFO(name);
    CHECK(fs::exists(dir / (name + ".svg")));
    CHECK(fs::exists(dir / (name + ".png")));
    CHECK_THAT(md, Contains("](" + name + ".svg) ([PNG](" + name + ".png))"));
  }
  // A log time axis labels its tics as numbers (1e-05, 100), not 0.0000100 or 100.000000.
  CHECK_THAT(slurp(dir / "loss-time.gp"), Contains("set logscale x 10\nset format x '%g'\n"));
  // Every table as CSV; the runs table's numbers read back to the hand-computed values.
  for (const char* t : {"runs", "breakdown", "failed", "coll", "files"}) CHECK(fs::exists(dir / (std::string(t) + ".csv")));
  const auto runs = read_csv(dir / "runs.csv");
  REQUIRE(runs.size() == 5);
  const std::vector<std::string>& head = runs[0];
  auto cell = [&](size_t row, const std::string& column) {
    const size_t c = size_t(std::find(head.begin(), head.end(), column) - head.begin());
    REQUIRE(c < head.size());
    return runs[row][c];
  };
  auto number = [&](size_t row, const std::string& column) { return std::stod(cell(row, column)); };
  CHECK(cell(4, "run") == "short");
  const double expect[4][6] = {{0.002, 256000, 0.128, 0.0005, 0.0003, 1},
                               {0.2, 2560, 0.00128, 0.05, 0.03, 100},
                               {0.05, 10240, 0.00512, 0.0125, 0.0075, 25},
                               {0.2, 2560, 0.00128, 0.05, 0.03, 100}};
  for (size_t r = 1; r <= 4; ++r) {
    INFO("row " << r);
    CHECK(number(r, "step_time_s") == Approx(expect[r - 1][0]).epsilon(1e-14));
    CHECK(number(r, "tokens_per_s") == Approx(expect[r - 1][1]).epsilon(1e-14));
    CHECK(number(r, "mfu") == Approx(expect[r - 1][2]).epsilon(1e-14));
    CHECK(number(r, "exposed_comm_s") == Approx(expect[r - 1][3]).epsilon(1e-14));
    CHECK(number(r, "exposed_comm_share") == Approx(0.25).epsilon(1e-14));
    CHECK(number(r, "hidden_dp_s") == Approx(expect[r - 1][4]).epsilon(1e-14));
    CHECK(number(r, "slowdown") == Approx(expect[r - 1][5]).epsilon(1e-14));
    CHECK(cell(r, "baseline") == "central");
  }
  // The CSV holds the exact doubles: the step time is the mean of /steps/time_ms, read here.
  const std::vector<double> ms = dtb::h5::File::open_read((dir / "dec.h5").string()).read<double>("steps/time_ms");
  CHECK(number(2, "step_time_s") == (ms[0] + ms[1] + ms[2] + ms[3]) / 4 / 1e3);
  CHECK(cell(1, "across_sites_bytes_per_step") == "0");
  const auto failed = read_csv(dir / "failed.csv");
  REQUIRE(failed.size() == 5);
  CHECK(failed[1] == std::vector<std::string>{"short", "incomplete", "killed by signal 9 (its result stops after step 2 of 4)"});
  // The same bytes again (figures included); without --csv no table files are written.
  std::map<fs::path, std::string> first;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() != ".h5") first[e.path()] = slurp(e.path());
  REQUIRE(dtbench("report golden --csv").exit_code == 0);
  for (const auto& [path, text] : first) {
    INFO(path);
    CHECK(slurp(path) == text);
  }
}

TEST_CASE("report --json holds every table, the same numbers as the CSV, and one baseline rule", "[exp][report]") {
  const fs::path dir = hand_folder();
  const Outcome o = dtbench("report golden --csv --json");
  INFO(o.out << o.err);
  REQUIRE(o.exit_code == 0);
  CHECK_THAT(o.out, Contains("table: golden/report.json"));
  const YAML::Node doc = YAML::LoadFile((dir / "report.json").string());  // JSON is YAML
  CHECK(doc["title"].as<std::string>() == "golden");
  const YAML::Node tables = doc["tables"];
  std::set<std::string> names;
  for (const auto& t : tables) names.insert(t.first.as<std::string>());
  CHECK(names == std::set<std::string>{"runs", "breakdown", "quality", "failed", "coll", "files"});
  for (const std::string& name : names) {
    INFO("table " << name);
    const auto table = read_csv(dir / (name + ".csv"));
    const YAML::Node json = tables[name];
    REQUIRE(json["columns"].size() == table[0].size());
    REQUIRE(json["rows"].size() == table.size() - 1);
    for (size_t c = 0; c < table[0].size(); ++c) CHECK(json["columns"][c].as<std::string>() == table[0][c]);
    for (size_t r = 1; r < table.size(); ++r)
      for (size_t c = 0; c < table[0].size(); ++c) {
        const YAML::Node cell = json["rows"][r - 1][table[0][c]];
        INFO("row " << r << " column " << table[0][c] << ": CSV '" << table[r][c] << "'");
        REQUIRE(cell.IsDefined());
        char* end = nullptr;
        const double x = std::strtod(table[r][c].c_str(), &end);
        if (table[r][c].empty()) CHECK((cell.IsNull() || cell.as<std::string>().empty()));
        else if (*end == '\0' && cell.Tag() != "!") CHECK(cell.as<double>() == x);  // a JSON number: the same double
        else CHECK(cell.as<std::string>() == table[r][c]);
      }
  }
  // Text stays text, numbers are numbers, n/a is null: by hand from the folder.
  const YAML::Node runs = tables["runs"]["rows"];
  CHECK(runs[1]["run"].as<std::string>() == "dec");
  CHECK(runs[1]["slowdown"].as<double>() == Approx(100).epsilon(1e-14));
  CHECK(tables["failed"]["rows"][1]["why"].as<std::string>() ==
        "error: rank 1: something broke (no verdict in its log: the runner was stopped)");
  // The quality table uses the runs table's one baseline rule: dec-sign names central (25x),
  // dec is central's twin on decentralized-1g (100x); short stopped early and is left out.
  const YAML::Node quality = tables["quality"]["rows"];
  REQUIRE(quality.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    INFO(quality[i]["run"].as<std::string>());
    CHECK(quality[i]["slowdown"].as<double>() == runs[i]["slowdown"].as<double>());
    CHECK(quality[i]["baseline"].as<std::string>() == "central");
  }
  CHECK(quality[2]["slowdown"].as<double>() == Approx(25).epsilon(1e-14));
}

// Issue 12's quality table on a hand-made folder: DDP, DiLoCo (H = 4) and Streaming DiLoCo
// (H = 4, 2 fragments) over 8 steps on 2 ranks, their across-site bytes per rank and step
// written by hand; time to target under both rules (the experiment's target_loss, the
// worst final validation loss).
TEST_CASE("the quality table: bytes per outer step, peak bytes per step, and the target loss", "[exp][report]") {
  const fs::path dir = scratch() / "quality";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string dec = "decentralized-1g";
  // DDP: 1000 B per rank every step; DiLoCo: 3000 B per rank at each outer step (steps 3
  // and 7); Streaming: 1500 B per rank at each fragment's sync (steps 1, 3, 5, 7).
  write_hand_train(dir, {"ddp", dec, "none", 10, 8, 8, 1000, {}, "", {{4, 3.0}, {8, 2.5}}});
  write_hand_train(dir, {"diloco", dec, "none", 5, 8, 8, 0, {0, 0, 0, 3000, 0, 0, 0, 3000},
                         "strategy: {name: diloco, inner_steps: 4}\n", {{4, 3.2}, {8, 2.8}}});
  write_hand_train(dir, {"streaming", dec, "none", 6, 8, 8, 0, {0, 1500, 0, 1500, 0, 1500, 0, 1500},
                         "strategy: {name: streaming_diloco, inner_steps: 4, fragments: 2}\n", {{4, 3.1}, {8, 2.6}}});
  const std::string runs = "runs:\n  - {name: ddp}\n  - {name: diloco}\n  - {name: streaming}\n";
  auto report = [&](const std::string& top) {
    write_file("quality/experiment.yaml", "name: quality\n" + top + "defaults: {model: tiny.yaml}\n" + runs);
    const Outcome o = dtbench("report quality --csv");
    INFO(o.out << o.err);
    REQUIRE(o.exit_code == 0);
    return read_csv(dir / "quality.csv");
  };
  auto column = [](const std::vector<std::vector<std::string>>& t, const std::string& name) {
    const size_t c = size_t(std::find(t[0].begin(), t[0].end(), name) - t[0].begin());
    REQUIRE(c < t[0].size());
    std::vector<std::string> out;
    for (size_t r = 1; r < t.size(); ++r) out.push_back(t[r][c]);
    return out;
  };
  auto numbers = [&](const std::vector<std::vector<std::string>>& t, const std::string& name) {
    std::vector<double> out;
    for (const std::string& v : column(t, name)) out.push_back(v.empty() ? -1 : std::stod(v));  // -1: n/a
    return out;
  };
  // Times are sums of step times: equal to the hand values up to round-off.
  auto near = [](const std::vector<double>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12));
  };
  // The worst final validation loss (DiLoCo's 2.8): every run reaches it at step 8.
  const auto worst = report("");
  REQUIRE(worst.size() == 4);
  CHECK(column(worst, "run") == std::vector<std::string>{"ddp", "diloco", "streaming"});
  // Across sites per step: all ranks' bytes over the 8 steps / 8 (2 x 1000; 2 x 2 x 3000 / 8;
  // 2 x 4 x 1500 / 8); per outer step: x H = 4 for the DiLoCos; peak: the largest step's sum.
  CHECK(numbers(worst, "across_sites_bytes_per_step") == std::vector<double>{2000, 1500, 1500});
  CHECK(numbers(worst, "across_sites_bytes_per_outer_step") == std::vector<double>{2000, 6000, 6000});
  CHECK(numbers(worst, "peak_across_sites_bytes_per_step") == std::vector<double>{2000, 6000, 3000});
  near(numbers(worst, "time_to_target_s"), {0.08, 0.04, 0.048});
  const std::string md = slurp(dir / "report.md");
  CHECK_THAT(md, Contains("Target loss: 2.8000, the highest final validation loss among these runs"));
  // target_loss: 2.7 (below DiLoCo's final loss: never reached); 3.05: DDP's first validation.
  auto below = report("target_loss: 2.7\n");
  near(numbers(below, "time_to_target_s"), {0.08, -1, 0.048});
  CHECK_THAT(slurp(dir / "report.md"), Contains("Target loss: 2.7000, the experiment's `target_loss`."));
  near(numbers(report("target_loss: 3.05\n"), "time_to_target_s"), {0.04, 0.04, 0.048});
  // The bytes columns do not depend on the target.
  CHECK(numbers(below, "peak_across_sites_bytes_per_step") == std::vector<double>{2000, 6000, 3000});
}

TEST_CASE("target_loss is a number >= 0, checked on entry", "[exp]") {
  for (const std::string bad : {"-1", "low", "[2]"}) {
    const std::string path = write_file("bad-target.yaml", "target_loss: " + bad + "\ndefaults:\n  model: " + kTiny +
                                                               "\nruns:\n  - name: a\n");
    expect_refused("run " + path + " --dry-run", {"bad-target.yaml:1", "'target_loss'"});
  }
}

TEST_CASE("a named baseline must be a train run of the experiment", "[exp][report]") {
  expect_refused("run " + bad_experiment("  - name: a\n    baseline: b\n") + " --dry-run",
                 {"bad.yaml:6", "run 'a'", "'baseline' must name a train run", "'b' is not a run"});
  expect_refused("run " + bad_experiment("  - name: a\n    baseline: c\n  - name: c\n    kind: coll\n") + " --dry-run",
                 {"run 'a'", "'c' is a coll run"});
}
