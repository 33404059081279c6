#pragma once
// The verifier and referee of `dtbench verify` (Gensyn's litepaper; Verde, arXiv
// 2502.19405): given a worker's commitments (commitment.hpp) and segment checkpoints, re-run
// a random sample of its K-step segments from their checkpoints with the same trainer (a
// world of one) and compare the hashes bit for bit. Where a segment's end hash differs, a
// dispute: phase 1 bisects the committed per-step leaves (about log2 K rounds) to the first
// step whose state differs; phase 2 (the worker committed traces) bisects that step's
// operation hashes to the first layer output that differs. The record names the step, the
// operation, both hashes, the Merkle proofs that tie each claim to its root, and what the
// referee re-ran (referee.hpp: one operation on the inputs both parties committed to, checked
// against their hashes), its time and its ruling.
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "verify/commitment.hpp"
#include "verify/referee.hpp"

namespace dtb::verify {

struct VerifyOptions {
  double fraction = 0.1;         // p: each segment re-run with this probability
  uint64_t seed = 1;             // the sample's seed
  std::string checkpoint_dir;    // '' = where the commitment says
  std::vector<std::string> sets; // --set overrides for the re-execution (data.path, ...)
  bool all = false;              // re-run every segment (p = 1)
};

// One party's claim in a dispute, with its Merkle proofs.
struct Claim {
  Digest hash{};          // the first differing state (phase 1) or operation (phase 2)
  Digest leaf{}, root{};  // its step leaf and the root that leaf is proved against
  Digest trace_root{};
  MerkleProof step_proof, op_proof;
  size_t step_index = 0, step_count = 0, op_index = 0, op_count = 0;
  bool proofs_ok = false;
};

struct Dispute {
  std::string kind;                 // "checkpoint" (file differs from its commitment) | "step"
  int64_t step = -1;                // the 0-based step whose result differs ("step")
  int step_rounds = 0, op_rounds = 0;
  std::string op;                   // phase 2's operation ('' without traces)
  Digest agreed{};                  // the last hash both agree on: the disputed work's input
  Claim worker, verifier;
  Ruling ruling;                    // "step": the referee's re-run (referee.hpp)
  double referee_seconds = 0;       // what the referee re-runs: the ruling's, or hashing the checkpoint
  double step_seconds = 0;          // the whole step, for comparison
  size_t proof_bytes() const;       // both parties' proofs
};

struct SegmentCheck {
  int64_t start = 0, end = 0;
  bool passed = false;
  double seconds = 0;
  std::optional<Dispute> dispute;
};

struct VerifyReport {
  int64_t steps = 0;                // steps committed
  size_t segments = 0;
  std::vector<SegmentCheck> checked;  // the sampled segments
  double reexec_seconds = 0, train_seconds = 0;  // the worker's: steps and commitments
  int64_t steps_reexecuted = 0;
  bool caught() const;
};

// Each of N segments chosen independently with probability P (counter-based from SEED).
std::vector<bool> sample_segments(size_t n, double p, uint64_t seed);

// Collective over WORLD, which must be one rank. Throws UsageError on a results file without
// commitments, a missing checkpoint, or a config that does not match its committed digest.
VerifyReport verify_run(const std::string& results_path, const VerifyOptions& options, coll::Communicator& world,
                        std::ostream& log);

// The dispute record as text (what dtbench verify prints).
std::string dispute_record(const Dispute& d, const Commitment& worker);

// Detection probability against p: how often a sample of N segments holds one of the BAD
// ones, over SEEDS seeds, beside 1 - (1 - p)^m.
struct DetectionPoint {
  double p, measured, formula;
  int m;
};
std::vector<DetectionPoint> detection_curve(size_t n, const std::vector<size_t>& bad, const std::vector<double>& ps,
                                            int seeds);

}  // namespace dtb::verify
