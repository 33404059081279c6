#pragma once
// Pipeline schedules as the list of actions one stage performs in a step.
//   GPipe: every forward, then every backward (micro-batch order 0..M-1 both times).
//   1F1B (PipeDream-Flush, Megatron's default): warm-up min(PP - stage - 1, M) forwards,
//   then one forward and one backward alternately, then the remaining backwards.
// Both run the backwards in the order 0..M-1, so gradients accumulate in the same order and
// the two schedules give bitwise the same parameters; they differ in time and memory only.
#include <string>
#include <vector>

namespace dtb::par {

enum class Pass { kForward, kBackward };
struct Action {
  Pass pass;
  int microbatch;
  bool operator==(const Action&) const = default;
};

enum class ScheduleKind { kGPipe, k1F1B };
ScheduleKind parse_schedule(const std::string& name);  // "gpipe" | "1f1b"

std::vector<Action> pipeline_schedule(ScheduleKind kind, int stage, int stages, int microbatches);

// Micro-batches whose activations are alive at once on STAGE (GPipe: M; 1F1B: at most PP - stage).
int live_microbatches(ScheduleKind kind, int stage, int stages, int microbatches);

}  // namespace dtb::par
