#include "verify/verifier.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <sstream>

#include <unistd.h>

#include "data/splitmix64.hpp"
#include "h5file.hpp"
#include "parallel/parallel_trainer.hpp"
#include "verify/recorder.hpp"

namespace dtb::verify {
namespace {

std::string short_hex(const Digest& d) { return hex(d).substr(0, 16); }

// The worker's config from its results file, made to re-execute: no cheat, no files, the
// worker's thread count when the bits depend on it (fast kernels; reproducible ones run on
// the worker's count unless the caller sets another), then the caller's overrides.
Config reexecution_config(const std::string& results_path, const Commitment& c, const VerifyOptions& o) {
  const std::string yaml = h5::File::open_read(results_path).read_string("config");
  const std::filesystem::path tmp =
      std::filesystem::temp_directory_path() / ("dtb-verify-" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(tmp) << yaml;
  std::vector<std::string> sets = {"verify.cheat=none", "train.checkpoint=", "train.checkpoint_every=0",
                                   "train.val_every=0"};
  if (c.mode != "reproducible") sets.push_back("train.threads=" + std::to_string(c.threads));
  sets.insert(sets.end(), o.sets.begin(), o.sets.end());
  Config config = load_config(train_schema(), {tmp.string()}, sets);
  std::filesystem::remove(tmp);
  if (config_digest(config) != c.config_digest)
    throw UsageError(results_path + ": its config does not hash to the committed config digest " +
                     hex(c.config_digest) + " (a --set changed the computation, or the file was altered)");
  if (config.get_string("train.kernels") != c.mode)
    throw UsageError(results_path + ": the commitments were made with " + c.mode + " kernels, the config says train.kernels = " +
                     config.get_string("train.kernels"));
  return config;
}

// Segments start at the committed checkpoints and run K steps (the last one to the end).
std::vector<std::pair<int64_t, int64_t>> segments_of(const Commitment& c) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t start : c.checkpoint_steps)
    if (start < c.last_step()) out.push_back({start, std::min<int64_t>(start + c.segment, c.last_step())});
  return out;
}

// First index in (LO, HI] where the two lists differ, given they agree at LO and differ at
// HI: bisection, one round per comparison (the hashes the parties exchange).
size_t bisect(size_t lo, size_t hi, const std::function<bool(size_t)>& agree, int* rounds) {
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    ++*rounds;
    (agree(mid) ? lo : hi) = mid;
  }
  return hi;
}

Claim step_claim(const Commitment& c, size_t index) {
  Claim k;
  k.step_index = index;
  k.step_count = c.leaves.size();
  k.hash = c.state[index];
  k.leaf = c.leaves[index];
  k.root = c.root();
  k.trace_root = c.trace_root[index];
  k.step_proof = merkle_proof(c.leaves, index);
  k.proofs_ok = merkle_verify(k.leaf, index, k.step_count, k.step_proof, k.root) &&
                k.leaf == step_leaf(c.first_step + int64_t(index), k.hash, k.trace_root);
  return k;
}

void add_op_claim(const Commitment& c, size_t op, Claim& k) {
  const std::vector<Digest>& ops = c.ops[k.step_index];
  k.op_index = op;
  k.op_count = ops.size();
  k.hash = ops[op];
  k.op_proof = merkle_proof(ops, op);
  k.proofs_ok = k.proofs_ok && merkle_verify(k.hash, op, ops.size(), k.op_proof, k.trace_root);
}

// Phase 1 over the states of [start, end], phase 2 inside the step found.
Dispute step_dispute(const Commitment& w, const Commitment& v, int64_t start, int64_t end, double seconds) {
  Dispute d;
  d.kind = "step";
  const size_t wi0 = size_t(start - w.first_step);
  auto agree = [&](size_t i) { return w.leaves[wi0 + i] == v.leaves[i]; };
  const size_t i = bisect(0, size_t(end - start), agree, &d.step_rounds);
  d.step = start + int64_t(i) - 1;
  d.agreed = v.state[i - 1];
  d.worker = step_claim(w, wi0 + i);
  d.verifier = step_claim(v, i);
  d.step_seconds = seconds / double(end - start);
  if (!w.trace) return d;
  const std::vector<Digest>& wo = w.ops[wi0 + i];
  const std::vector<Digest>& vo = v.ops[i];
  size_t op = 0;
  if (wo.size() == vo.size() && !wo.empty() && wo.back() != vo.back()) {
    // The input of operation 0 is the agreed state (index "-1"): bisect over 1 + ops.
    op = bisect(0, wo.size(), [&](size_t k) { return wo[k - 1] == vo[k - 1]; }, &d.op_rounds) - 1;
  } else {  // the states agree and only the trace differs: the first differing one, read in order
    while (op + 1 < wo.size() && wo[op] == vo[op]) ++op, ++d.op_rounds;
  }
  d.op = w.op_names[op];
  if (op > 0) d.agreed = vo[op - 1];
  add_op_claim(w, op, d.worker);
  add_op_claim(v, op, d.verifier);
  return d;
}

Dispute checkpoint_dispute(const Commitment& w, const Commitment& v, int64_t start) {
  Dispute d;
  d.kind = "checkpoint";
  d.step = start;
  d.worker = step_claim(w, size_t(start - w.first_step));
  d.verifier.hash = v.state[0];
  d.verifier.proofs_ok = true;  // the file itself is the evidence: anyone can hash it
  d.referee_seconds = v.hash_seconds[0];
  return d;
}

}  // namespace

size_t Dispute::proof_bytes() const {
  size_t n = 0;
  for (const Claim* c : {&worker, &verifier})
    n += verify::proof_bytes(c->step_proof) + verify::proof_bytes(c->op_proof) + 3 * sizeof(Digest);
  return n;
}

bool VerifyReport::caught() const {
  for (const SegmentCheck& s : checked)
    if (!s.passed) return true;
  return false;
}

std::vector<bool> sample_segments(size_t n, double p, uint64_t seed) {
  std::vector<bool> out(n);
  for (size_t j = 0; j < n; ++j) out[j] = double(splitmix64_at(seed, j) >> 11) * 0x1.0p-53 < p;
  return out;
}

VerifyReport verify_run(const std::string& results_path, const VerifyOptions& o, coll::Communicator& world,
                        std::ostream& log) {
  if (world.size() != 1) throw UsageError("dtbench verify re-executes on one rank (here " + std::to_string(world.size()) + ")");
  const Commitment w = Commitment::read(results_path);
  Config config = reexecution_config(results_path, w, o);
  VerifySettings v = verify_settings(config);
  if (v.segment != w.segment) throw UsageError(results_path + ": verify.segment differs from the committed segment");
  v.dir = o.checkpoint_dir.empty() ? w.checkpoint_dir : o.checkpoint_dir;
  std::ostringstream quiet;
  par::ParallelTrainer trainer(config, world, quiet);

  VerifyReport report;
  report.steps = w.last_step() - w.first_step;
  const auto segments = segments_of(w);
  report.segments = segments.size();
  const std::vector<bool> chosen = sample_segments(segments.size(), o.all ? 1.0 : o.fraction, o.seed);
  const std::vector<double> times = h5::File::open_read(results_path).read<double>("steps/time_ms");
  // The worker's cost: its steps and its commitments (the re-execution makes both).
  report.train_seconds = std::accumulate(times.begin(), times.end(), 0.0) / 1e3 +
                         std::accumulate(w.hash_seconds.begin(), w.hash_seconds.end(), 0.0);
  for (size_t j = 0; j < segments.size(); ++j) {
    if (!chosen[j]) continue;
    const auto [start, end] = segments[j];
    const std::string path = segment_checkpoint_path(v.dir, start);
    trainer.restore(load_checkpoint(path), path);
    Recorder rec(v, w.config_digest, w.threads, /*save_checkpoints=*/false);
    rec.attach(trainer);
    const auto t0 = std::chrono::steady_clock::now();
    trainer.run_steps(end);
    SegmentCheck s;
    s.start = start, s.end = end;
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Commitment& mine = rec.commitment();
    if (mine.state[0] != w.state[size_t(start - w.first_step)]) s.dispute = checkpoint_dispute(w, mine, start);
    else if (mine.leaves.back() != w.leaves[size_t(end - w.first_step)]) {
      s.dispute = step_dispute(w, mine, start, end, s.seconds);
      // The referee: the disputed operation's inputs from the honest replay, checked and re-run.
      const Evidence e = gather_evidence(trainer, v, w, path, *s.dispute);
      s.dispute->ruling = referee(trainer, v, e, *s.dispute);
      s.dispute->referee_seconds = s.dispute->ruling.seconds;
    }
    s.passed = !s.dispute;
    log << "segment [" << start << ", " << end << "): re-executed " << end - start << " steps in " << s.seconds << " s: "
        << (s.passed ? "end hash matches" : s.dispute->kind == "checkpoint" ? "CHECKPOINT DIFFERS FROM ITS COMMITMENT"
                                                                             : "END HASH DIFFERS")
        << "\n";
    if (s.dispute) log << dispute_record(*s.dispute, w);
    report.reexec_seconds += s.seconds;
    report.steps_reexecuted += end - start;
    report.checked.push_back(s);
  }
  return report;
}

std::string dispute_record(const Dispute& d, const Commitment& w) {
  std::ostringstream out;
  char buf[400];
  auto claim = [&](const char* who, const Claim& c, const char* root_name) {
    std::snprintf(buf, sizeof buf, "  %-8s %s | leaf %s, %zu-step proof to %s %s: %s\n", who, hex(c.hash).c_str(),
                  short_hex(c.leaf).c_str(), c.step_proof.size(), root_name, short_hex(c.root).c_str(),
                  c.proofs_ok ? "verifies" : "FAILS");
    out << buf;
    if (!c.op_proof.empty() || c.op_count > 0) {
      std::snprintf(buf, sizeof buf, "           operation %zu of %zu, %zu-step proof to the step's trace root %s\n",
                    c.op_index, c.op_count, c.op_proof.size(), short_hex(c.trace_root).c_str());
      out << buf;
    }
  };
  if (d.kind == "checkpoint") {
    out << "dispute: the checkpoint of step " << d.step << " does not hash to its commitment\n";
    claim("worker", d.worker, "the committed root");
    out << "  file     " << hex(d.verifier.hash) << " (the checkpoint as stored)\n";
    std::snprintf(buf, sizeof buf, "  referee: hash the checkpoint file (%.1f ms) and check the worker's proof\n",
                  d.referee_seconds * 1e3);
    out << buf;
    return out.str();
  }
  out << "dispute, phase 1: the first step whose state differs is step " << d.step << " (0-based; " << d.step_rounds
      << " bisection rounds)\n";
  if (!d.op.empty())
    out << "dispute, phase 2: inside it, the first operation that differs is '" << d.op << "' (" << d.op_rounds
        << " rounds over " << w.op_names.size() << " operations)\n";
  out << "  agreed   " << hex(d.agreed) << " (the input both parties computed alike)\n";
  claim("worker", d.worker, "the committed root");
  claim("verifier", d.verifier, "the verifier's root");
  const Ruling& r = d.ruling;
  if (r.refused) {
    out << "  referee: REFUSED the evidence: " << r.why << "\n";
    return out.str();
  }
  const std::string what = d.op.empty() ? "the step" : "'" + d.op + "'";
  out << "  referee: checked the state step " << d.step << " starts from against its committed hash"
      << (r.alone ? " and the input tensor against the committed output of the operation before" : "") << ", re-ran "
      << (r.alone ? what + " alone" : d.op.empty() ? "the whole step" : "the whole step (" + what + " is not re-run alone)")
      << "\n";
  std::snprintf(buf, sizeof buf, "           output %s: %s; %.3f ms (the whole step: %.1f ms); proofs %zu bytes\n",
                short_hex(r.output).c_str(),
                r.for_verifier && !r.for_worker   ? "the verifier's claim: rules against the worker"
                : r.for_worker && !r.for_verifier ? "the worker's claim: rules for the worker"
                                                  : "neither claim: no ruling",
                r.seconds * 1e3, d.step_seconds * 1e3, d.proof_bytes());
  out << buf;
  return out.str();
}

std::vector<DetectionPoint> detection_curve(size_t n, const std::vector<size_t>& bad, const std::vector<double>& ps,
                                            int seeds) {
  std::vector<DetectionPoint> out;
  for (double p : ps) {
    int caught = 0;
    for (int s = 0; s < seeds; ++s) {
      const std::vector<bool> chosen = sample_segments(n, p, uint64_t(s) + 1);
      bool any = false;
      for (size_t b : bad) any = any || chosen[b];
      caught += any;
    }
    out.push_back({p, double(caught) / seeds, 1.0 - std::pow(1.0 - p, double(bad.size())), int(bad.size())});
  }
  return out;
}

}  // namespace dtb::verify
