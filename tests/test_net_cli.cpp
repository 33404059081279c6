// The network profile's placement through the binary: a bad `placement:` stops `dtbench
// coll` with one line and exit code 2, and a run whose ranks all sit on one site of a
// multi-site profile says so in exactly one line at start-up (dtbench coll on one rank;
// dtbench train on 2 ranks under mpirun, where only rank 0 may print it).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "dtbench_runner.hpp"

namespace fs = std::filesystem;
using dtb::test::Outcome;
using Catch::Matchers::Contains;

namespace {

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_net_cli");
  return dir;
}

std::string shipped(const std::string& name) { return std::string(DTB_SOURCE_DIR) + "/configs/net/" + name + ".yaml"; }

Outcome dtbench(const std::string& args) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);  // Open MPI refuses root otherwise
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  return dtb::test::run_dtbench(args, scratch());
}

size_t count(const std::string& text, const std::string& piece) {
  size_t n = 0;
  for (size_t at = text.find(piece); at != std::string::npos; at = text.find(piece, at + 1)) ++n;
  return n;
}

const std::string kWarning = "warning: network profile '";

}  // namespace

TEST_CASE("net placement: a bad value is refused with one line and exit code 2", "[net][placement][cli]") {
  const fs::path bad = scratch() / "spread.yaml";
  std::ofstream(bad) << "placement: spread\nsites:\n  - {name: a, ranks: rest, intra: {latency: 1ms, bandwidth: 1Gbps}}\n";
  const std::string args = "coll -b 8 -e 8 --net " + bad.string();
  dtb::test::expect_usage_error(dtbench(args), args,
                                {"spread.yaml:1", "key 'placement'", "expected one of fill, round_robin, blocks, got 'spread'"});
}

TEST_CASE("net placement: one warning line when every rank sits on one site", "[net][placement][cli][mpi]") {
  const std::string coll = "mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " + dtb::test::dtbench_binary() +
                           " coll -b 8 -e 8 --clock virtual --out " + (scratch() / "coll.h5").string() + " --net ";
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  // DT-FM scenario 1 fills its 8-GPU nodes: both ranks on node0.
  const Outcome one_site = dtb::test::run_shell(coll + shipped("dtfm-1-dc-ondemand"), scratch());
  INFO(one_site.out << one_site.err);
  CHECK(one_site.exit_code == 0);
  CHECK(count(one_site.out, kWarning) == 1);
  CHECK_THAT(one_site.out, Contains("'dtfm-1-dc-ondemand' has 8 sites but puts all 2 ranks on 'node0'"));
  const Outcome central = dtb::test::run_shell(coll + shipped("centralized-25g"), scratch());
  CHECK(central.exit_code == 0);
  CHECK(count(central.out, kWarning) == 0);
  // One rank alone: nothing could cross sites, so nothing to warn about.
  const Outcome alone = dtbench("coll -b 8 -e 8 --clock virtual --out " + (scratch() / "coll1.h5").string() +
                                " --net " + shipped("dtfm-5-cities"));
  CHECK(alone.exit_code == 0);
  CHECK(count(alone.out, kWarning) == 0);
}

TEST_CASE("net placement: the trainer warns once, on rank 0", "[net][placement][cli][mpi]") {
  REQUIRE(dtbench("prepare --out " + (scratch() / "fortunes.h5").string()).exit_code == 0);
  const std::string train =
      "train --set data.path=" + (scratch() / "fortunes.h5").string() + " --set train.results=" +
      (scratch() / "train.h5").string() +
      " --set model.n_layer=1 --set model.n_embd=16 --set model.n_head=2 --set model.n_ctx=8 --set model.vocab_size=256"
      " --set train.seq_len=8 --set train.batch_size=2 --set train.steps=1 --set train.val_every=0 --set train.threads=1"
      " --set parallel.dp=2 --overwrite --set net.profile=";  // both runs write train.h5
  const std::string mpirun = "mpirun -np 2 --oversubscribe --mca mpi_yield_when_idle 1 " + dtb::test::dtbench_binary() + " ";
  // DT-FM scenario 1 fills its nodes: 2 ranks on node0.
  const Outcome node = dtb::test::run_shell(mpirun + train + shipped("dtfm-1-dc-ondemand"), scratch());
  INFO(node.out << node.err);
  CHECK(node.exit_code == 0);
  CHECK(count(node.out + node.err, kWarning) == 1);
  CHECK_THAT(node.out, Contains("'dtfm-1-dc-ondemand' has 8 sites but puts all 2 ranks on 'node0'"));
  // Scenario 5 puts them in blocks over its cities: Oregon and Virginia, no warning.
  const Outcome cities = dtb::test::run_shell(mpirun + train + shipped("dtfm-5-cities"), scratch());
  CHECK(cities.exit_code == 0);
  CHECK(count(cities.out + cities.err, kWarning) == 0);
}

TEST_CASE("net placement: the simulator warns once, as the trainer does", "[net][placement][cli][sim]") {
  const std::string sim = "sim --out none --set model.n_layer=2 --set parallel.dp=2 --set net.profile=";
  // DT-FM scenario 1 fills its 8-GPU nodes: both ranks on node0.
  const Outcome node = dtbench(sim + shipped("dtfm-1-dc-ondemand"));
  INFO(node.out << node.err);
  CHECK(node.exit_code == 0);
  CHECK(count(node.out, kWarning) == 1);
  CHECK_THAT(node.out, Contains("'dtfm-1-dc-ondemand' has 8 sites but puts all 2 ranks on 'node0'"));
  const Outcome cities = dtbench(sim + shipped("dtfm-5-cities"));
  CHECK(cities.exit_code == 0);
  CHECK(count(cities.out, kWarning) == 0);
}
