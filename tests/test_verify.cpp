// verify/ (issue 15): commitments while training, sampled re-execution and the two-phase
// dispute. Against independent references: libsodium's one-shot BLAKE2b and a published
// test vector, Merkle roots built by hand, a run without commitments (bitwise), the
// checkpoint files hashed on their own, the step and layer each cheat was told to alter,
// and 1 - (1 - p)^m for the sampling. A world of one, MPI as a singleton (as test_train).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <sodium.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "parallel/parallel_trainer.hpp"
#include "verify/recorder.hpp"
#include "verify/verifier.hpp"

namespace fs = std::filesystem;
using dtb::verify::Digest;

namespace {

dtb::coll::Communicator& world() {
  static dtb::coll::Communicator w(MPI_COMM_WORLD, dtb::netem::uniform_profile(1, 0, 0), dtb::netem::ClockKind::kWall);
  return w;
}

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("test_verify");
  return dir;
}

std::string fortunes() {
  static const std::string path = dtb::test::prepared_fortunes(scratch());
  return path;
}

// A small GPT (2 blocks, width 32): 12 steps in 3 segments of 4, one kernel thread.
dtb::Config small(const std::string& name, const std::vector<std::string>& sets) {
  std::vector<std::string> all = {"data.path=" + fortunes(), "train.results=" + (scratch() / (name + ".h5")).string(),
                                  "verify.dir=" + (scratch() / (name + "-ck")).string(), "train.threads=1",
                                  "model.n_layer=2", "model.n_embd=32", "train.batch_size=4", "train.seq_len=32",
                                  "train.steps=12", "train.val_every=0", "train.log_every=100"};
  all.insert(all.end(), sets.begin(), sets.end());
  return dtb::load_config(dtb::train_schema(), {std::string(DTB_SOURCE_DIR) + "/configs/model/tiny.yaml"}, all);
}

// Trains NAME with SETS and commitments every 4 steps (traces on); returns the results path.
// A name trained before in this process is not trained again (the later tests reuse runs).
std::string train(const std::string& name, const std::vector<std::string>& sets) {
  static std::map<std::string, std::string> trained;
  if (trained.count(name)) return trained[name];
  std::vector<std::string> all = {"verify.segment=4", "verify.trace=true"};
  all.insert(all.end(), sets.begin(), sets.end());
  const dtb::Config config = small(name, all);
  std::ostringstream log;
  dtb::par::ParallelTrainer t(config, world(), log);
  const auto rec = dtb::verify::attach_recorder(config, t);
  t.run("test");
  return trained[name] = config.get_string("train.results");
}

// A cheat at step 5 (layer 1), inside segment [4, 8).
std::string train_cheat(const std::string& cheat) {
  return train("cheat-" + cheat, {"verify.cheat=" + cheat, "verify.cheat_step=5", "verify.cheat_layer=1"});
}

dtb::verify::VerifyReport verify_all(const std::string& results) {
  std::ostringstream log;
  dtb::verify::VerifyOptions o;
  o.all = true;
  return dtb::verify::verify_run(results, o, world(), log);
}

Digest sodium_blake2b(const std::vector<unsigned char>& bytes) {
  Digest d;
  crypto_generichash(d.data(), d.size(), bytes.data(), bytes.size(), nullptr, 0);
  return d;
}

size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  size_t n = a.size() != b.size();
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

}  // namespace

TEST_CASE("the hasher is libsodium's BLAKE2b-256 over a length-prefixed domain", "[verify]") {
  // The published BLAKE2b-256 of "abc" (RFC 7693's algorithm at a 32-byte digest).
  CHECK(dtb::verify::hex(sodium_blake2b({'a', 'b', 'c'})) ==
        "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  // Hasher("ab").bytes("xyz"): 8-byte little-endian length 2, "ab", then the bytes.
  const std::vector<unsigned char> want = {2, 0, 0, 0, 0, 0, 0, 0, 'a', 'b', 'x', 'y', 'z'};
  const std::string xyz = "xyz";
  CHECK(dtb::verify::Hasher("ab").bytes(std::as_bytes(std::span(xyz.data(), 3))).finish() == sodium_blake2b(want));
  CHECK(dtb::verify::from_hex(dtb::verify::hex(sodium_blake2b(want))) == sodium_blake2b(want));
  CHECK_THROWS_AS(dtb::verify::from_hex("xyz"), dtb::UsageError);
}

TEST_CASE("Merkle roots equal hand-built trees, every proof verifies and tampered ones fail", "[verify]") {
  using namespace dtb::verify;
  std::vector<Digest> leaves;
  for (int i = 0; i < 9; ++i) leaves.push_back(Hasher("leaf").u64(uint64_t(i)).finish());
  auto node = [](const Digest& a, const Digest& b) { return Hasher("merkle-node").digest(a).digest(b).finish(); };
  const auto& l = leaves;
  CHECK(merkle_root({l[0]}) == l[0]);
  CHECK(merkle_root({l[0], l[1]}) == node(l[0], l[1]));
  // Five leaves: ((01)(23))(4): the odd one is carried up unchanged.
  CHECK(merkle_root({l[0], l[1], l[2], l[3], l[4]}) == node(node(node(l[0], l[1]), node(l[2], l[3])), l[4]));
  for (size_t n = 1; n <= leaves.size(); ++n) {
    const std::vector<Digest> part(leaves.begin(), leaves.begin() + ptrdiff_t(n));
    const Digest root = merkle_root(part);
    for (size_t i = 0; i < n; ++i) {
      INFO("n " << n << " index " << i);
      MerkleProof p = merkle_proof(part, i);
      CHECK(p.size() <= size_t(std::ceil(std::log2(double(n)))));
      CHECK(merkle_verify(part[i], i, n, p, root));
      CHECK_FALSE(merkle_verify(l[(i + 1) % 9], i, n, p, root));  // another leaf
      if (n > 1) {
        CHECK_FALSE(merkle_verify(part[i], (i + 1) % n, n, p, root));  // another place
        MerkleProof bad = p;
        bad[0].sibling[5] ^= 1;
        CHECK_FALSE(merkle_verify(part[i], i, n, bad, root));
        bad = p;
        bad.pop_back();
        CHECK_FALSE(merkle_verify(part[i], i, n, bad, root));
      }
    }
  }
}

TEST_CASE("commitments change no number: a run with them is bitwise the run without", "[verify]") {
  std::ostringstream log;
  const dtb::Config off = small("off", {});
  dtb::par::ParallelTrainer plain(off, world(), log);
  CHECK(dtb::verify::attach_recorder(off, plain) == nullptr);  // verify.segment = 0: nothing attached
  const auto a = plain.run("test").steps;
  const dtb::Config on = small("on", {"verify.segment=4", "verify.trace=true"});
  dtb::par::ParallelTrainer traced(on, world(), log);
  const auto rec = dtb::verify::attach_recorder(on, traced);
  const auto b = traced.run("test").steps;
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(std::memcmp(&a[i].loss, &b[i].loss, sizeof(double)) == 0);
  CHECK(differing(plain.gather_params(), traced.gather_params()) == 0);
  CHECK_FALSE(dtb::h5::File::open_read((scratch() / "off.h5").string()).exists("verify"));

  // The commitment: one state per step plus the start, a checkpoint every 4 steps whose file
  // hashes (independently of the recorder) to the committed state, leaves to the root.
  const auto c = dtb::verify::Commitment::read((scratch() / "on.h5").string());
  CHECK(c.state.size() == 13);
  CHECK(c.checkpoint_steps == std::vector<int64_t>{0, 4, 8, 12});
  // tokens, embedding, 2 blocks, logits, head backward, 2 blocks backward, gradients, update
  CHECK(c.op_names.size() == 1 + 1 + 2 + 1 + 1 + 2 + 2);
  for (int64_t s : c.checkpoint_steps) {
    const auto ck = dtb::load_checkpoint(dtb::verify::segment_checkpoint_path(c.checkpoint_dir, s));
    CHECK(dtb::verify::state_hash(ck, c.config_digest) == c.state[size_t(s)]);
  }
  for (size_t i = 1; i < c.state.size(); ++i) {
    CHECK(c.trace_root[i] == dtb::verify::merkle_root(c.ops[i]));
    CHECK(c.leaves[i] == dtb::verify::step_leaf(int64_t(i), c.state[i], c.trace_root[i]));
  }
  CHECK(dtb::verify::hex(c.root()) == dtb::h5::File::open_read((scratch() / "on.h5").string()).attr_string("verify", "root"));
}

TEST_CASE("an honest worker passes when every segment is re-executed", "[verify]") {
  const std::string results = train("honest", {});
  const auto r = verify_all(results);
  CHECK(r.segments == 3);
  CHECK(r.checked.size() == 3);
  CHECK_FALSE(r.caught());
  CHECK(r.steps_reexecuted == 12);
}

// Each cheat at step 5, inside segment [4, 8): caught there and only there; the bisection
// lands on step 5 and, through the traces, on the operation the cheat altered first.
TEST_CASE("every cheat is caught at p = 1, and the dispute finds its step and layer", "[verify]") {
  struct Case {
    std::string cheat, op;
  };
  const Case k = GENERATE(Case{"skip_step", "update (AdamW)"}, Case{"other_data", "batch tokens (inputs, targets)"},
                          Case{"low_precision", "microbatch 0: block 0 forward"},
                          Case{"perturb_param", "update (AdamW)"}, Case{"skip_layer", "microbatch 0: block 1 forward"},
                          Case{"corrupt_checkpoint", ""});
  INFO("cheat " << k.cheat);
  const std::string results = train_cheat(k.cheat);
  const auto r = verify_all(results);
  REQUIRE(r.checked.size() == 3);
  CHECK(r.caught());
  // corrupt_checkpoint: the stored checkpoint after the cheat step, step 8's, starts the bad segment.
  const size_t bad = k.cheat == "corrupt_checkpoint" ? 2 : 1;
  for (size_t j = 0; j < 3; ++j) CHECK(r.checked[j].passed == (j != bad));
  REQUIRE(r.checked[bad].dispute);
  const dtb::verify::Dispute& d = *r.checked[bad].dispute;
  CHECK(d.worker.proofs_ok);
  CHECK(d.verifier.proofs_ok);
  CHECK(d.worker.hash != d.verifier.hash);
  if (k.cheat == "corrupt_checkpoint") {
    CHECK(d.kind == "checkpoint");
    CHECK(d.step == 8);
    return;
  }
  CHECK(d.kind == "step");
  CHECK(d.step == 5);
  CHECK(d.step_rounds == 2);  // log2 K for K = 4
  CHECK(d.op == k.op);
  CHECK(d.op_rounds <= 4);    // ceil(log2(1 + 11 operations))
  CHECK(d.referee_seconds > 0);  // timed (a wall-clock time: no bound against the step, which is timed apart)
  // The proofs tie each claim to its root; a tampered one no longer does.
  dtb::verify::MerkleProof bad_proof = d.worker.op_proof;
  REQUIRE(!bad_proof.empty());
  bad_proof[0].sibling[0] ^= 0x80;
  CHECK_FALSE(dtb::verify::merkle_verify(d.worker.hash, d.worker.op_index, d.worker.op_count, bad_proof,
                                         d.worker.trace_root));
  const auto w = dtb::verify::Commitment::read(results);
  CHECK(dtb::verify::merkle_verify(d.worker.leaf, d.worker.step_index, d.worker.step_count, d.worker.step_proof, w.root()));
  CHECK(dtb::verify::dispute_record(d, w).find(k.op) != std::string::npos);

  // The referee re-ran the operation (a block's forward alone; the others within their step)
  // and ruled against the cheat: its output is the hash an honest run, trained apart,
  // committed for that operation.
  const dtb::verify::Ruling& ruling = d.ruling;
  CHECK_FALSE(ruling.refused);
  CHECK(ruling.alone == (k.op.find("forward") != std::string::npos));
  CHECK(ruling.for_verifier);
  CHECK_FALSE(ruling.for_worker);
  const auto honest = dtb::verify::Commitment::read(train("honest", {}));
  CHECK(ruling.output == honest.ops[6][d.worker.op_index]);  // ops[6]: the step that made state 6
  CHECK(ruling.output == d.verifier.hash);
  CHECK(dtb::verify::dispute_record(d, w).find("rules against the worker") != std::string::npos);
}

// Verde's referee takes the parties' inputs only where they hash to what both committed to.
TEST_CASE("the referee refuses a tampered input tensor or state and rules on the true ones", "[verify]") {
  const std::string cheat = GENERATE(std::string("skip_layer"), std::string("perturb_param"));
  INFO("cheat " << cheat);
  const std::string results = train_cheat(cheat);
  const auto r = verify_all(results);
  REQUIRE(r.checked.size() == 3);
  REQUIRE(r.checked[1].dispute);
  const dtb::verify::Dispute& d = *r.checked[1].dispute;
  const auto w = dtb::verify::Commitment::read(results);
  const dtb::Config config = small("referee", {"verify.segment=4", "verify.trace=true"});
  std::ostringstream log;
  dtb::par::ParallelTrainer t(config, world(), log);
  const dtb::verify::VerifySettings v = dtb::verify::verify_settings(config);
  const dtb::verify::Evidence e =
      dtb::verify::gather_evidence(t, v, w, dtb::verify::segment_checkpoint_path(w.checkpoint_dir, 4), d);
  CHECK(e.step == 5);
  CHECK(e.state.step == 5);
  // skip_layer: block 1's forward alone, on block 0's output ((B, T, C) of micro-batch 0).
  CHECK(e.input.size() == (cheat == "skip_layer" ? size_t(4 * 32 * 32) : 0));
  const dtb::verify::Ruling again = dtb::verify::referee(t, v, e, d);
  CHECK_FALSE(again.refused);
  CHECK(again.output == d.verifier.hash);
  CHECK(again.for_verifier);
  if (!e.input.empty()) {
    dtb::verify::Evidence bad = e;
    bad.input[100] = std::nextafter(bad.input[100], 1.0f);  // one ulp of one element
    const dtb::verify::Ruling refused = dtb::verify::referee(t, v, bad, d);
    CHECK(refused.refused);
    CHECK(refused.why.find("input tensor") != std::string::npos);
    CHECK_FALSE(refused.for_verifier);
  }
  dtb::verify::Evidence bad = e;
  bad.state.params[0] = std::nextafter(bad.state.params[0], 1.0f);
  const dtb::verify::Ruling refused = dtb::verify::referee(t, v, bad, d);
  CHECK(refused.refused);
  CHECK(refused.why.find("committed state") != std::string::npos);
}

// Every operation the referee re-runs alone (each block's forward, the logits), on a stage
// of its own, gives the hash the whole model's forward committed in an honest run's trace.
TEST_CASE("the referee's operations alone give the honest trace's hashes", "[verify]") {
  const std::string results = train("honest", {});
  const auto w = dtb::verify::Commitment::read(results);
  const dtb::Config config = small("referee-honest", {"verify.segment=4", "verify.trace=true"});
  std::ostringstream log;
  dtb::par::ParallelTrainer t(config, world(), log);
  const dtb::verify::VerifySettings v = dtb::verify::verify_settings(config);
  int alone = 0;
  for (size_t op = 0; op < w.op_names.size(); ++op) {
    int layer = 0;
    if (!dtb::verify::runs_alone(w.op_names[op], &layer)) continue;
    INFO("operation " << w.op_names[op]);
    dtb::verify::Dispute d;  // as if disputed at step 5, both claims the honest hash
    d.kind = "step", d.step = 5, d.op = w.op_names[op];
    d.worker.op_index = d.verifier.op_index = op;
    d.worker.hash = d.verifier.hash = w.ops[6][op];
    const auto e = dtb::verify::gather_evidence(t, v, w, dtb::verify::segment_checkpoint_path(w.checkpoint_dir, 4), d);
    const dtb::verify::Ruling r = dtb::verify::referee(t, v, e, d);
    CHECK(r.alone);
    CHECK(r.output == w.ops[6][op]);
    CHECK((r.for_worker && r.for_verifier));
    alone += 1;
  }
  CHECK(alone == 3);  // block 0, block 1, the logits
}

// verify_run itself (not only the sampler) at p = 0.5 over 12 seeds: one bad segment of 3
// (perturb_param at step 5), so a seed catches the cheat exactly when its sample holds
// segment [4, 8), and the share caught is near 1 - (1 - p)^1.
TEST_CASE("verify_run at p = 0.5 catches exactly when it samples the bad segment", "[verify]") {
  const std::string results = train_cheat("perturb_param");
  const int seeds = 12;
  int caught = 0;
  for (uint64_t seed = 1; seed <= uint64_t(seeds); ++seed) {
    INFO("seed " << seed);
    std::ostringstream log;
    dtb::verify::VerifyOptions o;
    o.fraction = 0.5;
    o.seed = seed;
    const auto r = dtb::verify::verify_run(results, o, world(), log);
    const std::vector<bool> sampled = dtb::verify::sample_segments(3, 0.5, seed);
    CHECK(r.checked.size() == size_t(std::count(sampled.begin(), sampled.end(), true)));
    for (const auto& s : r.checked) CHECK(s.passed == (s.start != 4));
    CHECK(r.caught() == sampled[1]);
    caught += r.caught();
  }
  // Binomial(12, 0.5) within 3 standard deviations: 2 to 10 caught (the seeds are fixed:
  // no flake; a sampler that ignored p, or a verifier that missed, would fall outside).
  CHECK(std::abs(double(caught) / seeds - (1 - std::pow(1 - 0.5, 1))) <= 3 * std::sqrt(0.25 / seeds));
}

TEST_CASE("sampling takes each segment with probability p and detection follows 1 - (1 - p)^m", "[verify]") {
  const auto chosen = dtb::verify::sample_segments(20000, 0.25, 7);
  const double share = double(std::count(chosen.begin(), chosen.end(), true)) / 20000.0;
  CHECK(std::abs(share - 0.25) < 4 * std::sqrt(0.25 * 0.75 / 20000));
  CHECK(dtb::verify::sample_segments(50, 1.0, 3) == std::vector<bool>(50, true));
  const auto curve = dtb::verify::detection_curve(40, {3, 17, 30}, {0.05, 0.2, 0.5}, 4000);
  for (const auto& d : curve) {
    INFO("p " << d.p << " measured " << d.measured << " formula " << d.formula);
    CHECK(d.m == 3);
    CHECK(d.formula == Approx(1 - std::pow(1 - d.p, 3)));
    CHECK(std::abs(d.measured - d.formula) < 4 * std::sqrt(d.formula * (1 - d.formula) / 4000) + 1e-9);
  }
}

TEST_CASE("verify keys and dtbench verify: bad input is one line and exit code 2", "[verify]") {
  CHECK_THROWS_AS(dtb::train_settings(small("bad", {"verify.trace=true"})), dtb::UsageError);  // no segment
  CHECK_THROWS_AS(dtb::train_settings(small("bad", {"verify.segment=4", "verify.cheat=skip_step",
                                                     "verify.cheat_step=12"})), dtb::UsageError);
  CHECK_THROWS_AS(dtb::train_settings(small("bad", {"verify.segment=4", "verify.cheat_layer=2"})), dtb::UsageError);
  // A results file without commitments (the "off" run's, or made here).
  const dtb::Config off = small("plain", {});
  std::ostringstream log;
  dtb::par::ParallelTrainer t(off, world(), log);
  t.run("test");
  const std::string cmd = std::string(DTB_BINARY) + " verify " + (scratch() / "plain.h5").string() + " 2>" +
                          (scratch() / "err.txt").string() + " >/dev/null";
  CHECK(WEXITSTATUS(std::system(cmd.c_str())) == 2);
  std::ifstream err(scratch() / "err.txt");
  std::string line, rest;
  std::getline(err, line);
  CHECK(line.find("no commitments") != std::string::npos);
  CHECK_FALSE(std::getline(err, rest));
}

TEST_CASE("dtbench train and verify end to end: exit 0 honest, 1 caught", "[verify]") {
  const std::string base = std::string(DTB_BINARY) + " train --config " + DTB_SOURCE_DIR +
                           "/configs/model/tiny.yaml --set data.path=" + fortunes() +
                           " --set model.n_layer=2 --set model.n_embd=32 --set train.steps=8 --set train.val_every=0"
                           " --set train.threads=1 --set verify.segment=4 --set verify.dir=" +
                           (scratch() / "cli-ck").string();
  const std::string honest = (scratch() / "cli-honest.h5").string(), cheat = (scratch() / "cli-cheat.h5").string();
  REQUIRE(std::system((base + " --set train.results=" + honest + " >/dev/null").c_str()) == 0);
  const std::string verify = std::string(DTB_BINARY) + " verify --all ";
  CHECK(WEXITSTATUS(std::system((verify + honest + " >/dev/null").c_str())) == 0);
  REQUIRE(std::system((base + " --set train.results=" + cheat + " --set verify.dir=" + (scratch() / "cli-ck2").string() +
                       " --set verify.cheat=perturb_param --set verify.cheat_step=2 >/dev/null").c_str()) == 0);
  const std::string out = (scratch() / "cli-out.txt").string();
  CHECK(WEXITSTATUS(std::system((verify + cheat + " >" + out).c_str())) == 1);
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("first step whose state differs is step 2") != std::string::npos);
  CHECK(text.find("CAUGHT") != std::string::npos);
}

int main(int argc, char** argv) {
  dtb::coll::MpiSession mpi(&argc, &argv, /*thread_multiple=*/true);
  const int rc = Catch::Session().run(argc, argv);
  std::error_code ec;
  fs::remove_all(scratch(), ec);
  return rc;
}
