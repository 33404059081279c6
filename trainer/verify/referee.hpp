#pragma once
// The referee of a dispute (Verde, arXiv 2502.19405): once the bisection has found the first
// operation whose output the parties' hashes disagree on, the parties hand the referee that
// operation's inputs, the referee checks them against the hashes both committed to (the
// state the step starts from, the previous operation's output), re-runs that one operation
// alone, hashes its output and rules for the claim it matches.
//
// Here the honest re-execution plays the party that hands the inputs over: gather_evidence()
// replays the segment up to the disputed step and keeps the state at its start and the
// operation's input tensor. A block's forward and the LM head's forward (logits) are re-run
// alone on a stage of their own (TransformerStage::forward_block / forward_logits). The other
// operations (the batch's tokens, the embedding, the backward ones, the gradient sum, the
// update) need state the trace does not hash alone (the data, saved activations, the AdamW
// moments with the clipping and schedule): for them the referee re-runs the whole step from
// the agreed state, and the ruling says so.
#include <cstdint>
#include <string>
#include <vector>

#include "train/checkpoint.hpp"
#include "verify/merkle.hpp"
#include "verify/verify_config.hpp"

namespace dtb::par {
class ParallelTrainer;
}

namespace dtb::verify {

struct Commitment;
struct Dispute;

// What the parties hand over for the disputed operation of a step dispute.
struct Evidence {
  int64_t step = 0;           // the step (0-based) and, with traces, the operation
  size_t op = 0;
  std::string op_name;        // '' without traces: the step's resulting state is disputed
  CheckpointState state;      // the state the step starts from
  Digest state_hash{};        // ... as committed (both parties agree on it)
  std::vector<float> input;   // the operation's input tensor (empty: not re-run alone)
  std::string input_name;     // the operation that output it (op - 1)
  Digest input_hash{};        // its committed hash
  Digest config_digest{};
};

struct Ruling {
  bool refused = false;       // an input does not hash to what the parties agreed on
  std::string why;            // refused: which input
  bool alone = false;         // the one operation re-run alone (else the whole step)
  Digest output{};            // the re-run's hash of the disputed output
  bool for_worker = false, for_verifier = false;  // which claim OUTPUT equals
  double seconds = 0;         // the re-run alone (not the checks or the setup)
  std::string reran() const;  // "'microbatch 0: block 1 forward' alone" | "the whole step (...)"
};

// Can operation NAME be re-run alone? Its local layer (-1: the LM head) in *LAYER.
bool runs_alone(const std::string& name, int* layer);

// Replays the segment from the checkpoint at CHECKPOINT (step START) up to D's step on T,
// keeping the state at the step's start and, where the operation runs alone, its input.
Evidence gather_evidence(par::ParallelTrainer& t, const VerifySettings& v, const Commitment& worker,
                         const std::string& checkpoint, const Dispute& d);

// Checks E against its hashes and re-runs the disputed operation (or step) on T's settings;
// T is restored to E's state when the whole step is re-run.
Ruling referee(par::ParallelTrainer& t, const VerifySettings& v, const Evidence& e, const Dispute& d);

}  // namespace dtb::verify
