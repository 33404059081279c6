#include "sim/report.hpp"

#include <algorithm>
#include <iomanip>
#include <ostream>

#include "sim/format.hpp"

namespace dtb::sim {
namespace {

const char* schedule_name(par::ScheduleKind s) { return s == par::ScheduleKind::kGPipe ? "gpipe" : "1f1b"; }

void print_inputs(std::ostream& out, const SimSettings& s, const SimResult& r) {
  const GPTConfig& m = s.model;
  out << "dtbench sim: " << s.name << ", N = " << format_count(r.params) << " parameters, "
      << format_flops(r.flops_per_token) << " per token (6N + 6LCT)\n"
      << "  model    L " << m.n_layer << ", C " << m.n_embd << ", NH " << m.n_head << ", T " << s.seq_len << ", V "
      << m.vocab_size << "\n"
      << "  layout   DP " << s.grid.dp << " x PP " << s.grid.pp << " x TP " << s.grid.tp << " = " << r.world
      << " ranks, " << schedule_name(s.schedule) << "; batch " << s.batch_size << " = " << s.grid.dp << " x "
      << s.microbatches << " micro-batches of " << r.micro_batch << " x " << s.seq_len << " tokens\n"
      << "  device   " << r.device_name << ": " << kPrecisionNames[size_t(s.compute)] << " "
      << format_flops(r.peak_flops) << "/s x " << format_fixed(r.efficiency, 2) << " achieved\n"
      << "  network  " << r.net_name << (s.net_path.empty() ? " (no limits)" : " (" + s.net_path + ")")
      << "; slowest link used " << format_rate(r.slowest_link_Bps * 8) << ", largest latency "
      << format_seconds(r.largest_latency_s) << "\n"
      << "  DP sync  "
      << (s.inner_steps > 0 ? "DiLoCo, the pseudo-gradient every " + std::to_string(s.inner_steps) +
                                  " steps (amortised per step below), "
          : s.strategy == "cocktail" ? "CocktailSGD (random " + format_fixed(s.random_ratio, 3) + ", top-k " +
                                           format_fixed(s.topk_ratio, 3) + ", " + std::to_string(s.bits) +
                                           " bits) over a parameter server with a shard per rank, "
          : s.strategy == "demo" ? "DeMo (top " + std::to_string(s.topk) + " of " + std::to_string(s.chunk) +
                                       " DCT components per chunk), all-gathered, "
                            : std::string())
      << (s.momentum_codec.empty() ? std::string()
                                   : "the Adam momentum through the compressed server (" + s.momentum_codec + ") after " +
                                         std::to_string(s.freeze_step) + " warm-up steps (the step below is one after it; " +
                                         "the warm-up's DDP), ")
      << algo_name(s.dp_algo) << ", codec " << s.dp_codec << ", grads "
      << kPrecisionNames[size_t(s.grad_precision)] << ", " << r.dp_buckets << " bucket"
      << (r.dp_buckets == 1 ? "" : "s") << " per rank\n\n";
}

void row(std::ostream& out, const std::string& part, double seconds, double step, const LinkBytes* bytes) {
  out << "  " << std::left << std::setw(26) << part << std::right << std::setw(12) << format_seconds(seconds)
      << std::setw(9) << format_percent(seconds / step);
  if (bytes) out << std::setw(14) << format_bytes(bytes->intra) << std::setw(14) << format_bytes(bytes->inter);
  out << "\n";
}

// 1-bit Adam / QuantizedAdam: DP bytes after the warm-up and during it (DDP's), and over
// the run of train.steps with freeze_step of them warm-up (DeepSpeed's 1 / (f + (1 - f) / 16)
// for 1 bit against fp16 gradients).
void print_warmup_volume(std::ostream& out, const SimSettings& s, const SimResult& r) {
  if (s.momentum_codec.empty() || s.grid.dp == 1) return;
  const double warm = r.dp_bytes_warmup.total(), after = r.dp_bytes.total();
  const double f = s.steps > 0 ? std::min(1.0, double(s.freeze_step) / s.steps) : 0.0;
  const double run = f * warm + (1 - f) * after;
  out << "  DP volume   " << format_bytes(after) << " per rank per step after the warm-up, " << format_bytes(warm)
      << " during it (DDP): " << format_fixed(warm / after, 1) << "x less; over " << s.steps << " steps with "
      << s.freeze_step << " of warm-up " << format_bytes(run) << " per step, " << format_fixed(warm / run, 2)
      << "x less than DDP\n";
}

}  // namespace

void print_result(std::ostream& out, const SimSettings& s, const SimResult& r) {
  print_inputs(out, s, r);
  const StepTimes& t = r.time;
  out << "  " << std::left << std::setw(26) << "per step (critical path)" << std::right << std::setw(12) << "time"
      << std::setw(9) << "share" << std::setw(14) << "sent/rank in" << std::setw(14) << "across sites" << "\n";
  row(out, "forward compute", t.compute_fwd, t.step, nullptr);
  row(out, "backward compute", t.compute_bwd, t.step, nullptr);
  row(out, "TP comm (blocking)", t.tp, t.step, &r.tp_bytes);
  row(out, "pipeline bubble", t.bubble, t.step, nullptr);
  row(out, "PP comm, exposed", t.pp_exposed, t.step, &r.pp_bytes);
  row(out, "DP comm, exposed", t.dp_exposed, t.step, &r.dp_bytes);
  row(out, "norm/loss allreduce", t.other, t.step, nullptr);
  row(out, "optimizer", t.optimizer, t.step, nullptr);
  row(out, "step", t.step, t.step, nullptr);
  const double hidden = t.dp_total > 0 ? 1 - t.dp_exposed / t.dp_total : 0;
  out << "\n  PP messages on the wire   " << format_seconds(t.pp_total) << " per rank (busiest boundary)\n"
      << "  DP sync on the DP channel " << format_seconds(t.dp_total) << ", " << format_percent(std::max(0.0, hidden))
      << " of it hidden behind backward\n"
      << "  throughput  " << format_count(r.tokens_per_s()) << " tokens/s, MFU " << format_percent_sig(r.mfu()) << " of "
      << r.world << " x " << format_flops(r.peak_flops) << "/s\n"
      << "  slowdown    " << format_fixed(r.slowdown(), 2) << "x against free communication ("
      << format_seconds(t.ideal) << " per step)\n";
  print_warmup_volume(out, s, r);
  const MemoryPerRank& m = r.memory;
  out << "  memory      " << format_bytes(m.total()) << " per rank (stage " << m.stage << "): params "
      << format_bytes(m.params) << ", grads " << format_bytes(m.grads) << ", optimizer " << format_bytes(m.optimizer)
      << ", activations " << format_bytes(m.activations)
      << (m.pp_buffers > 0 ? ", AQ-SGD buffers " + format_bytes(m.pp_buffers) : std::string())
      << "; the device has " << format_bytes(r.memory_capacity)
      << (r.fits() ? ": fits\n" : ": DOES NOT FIT\n");
}

void print_sweep(std::ostream& out, const std::string& key, const std::vector<SweepPoint>& points) {
  const char* heads[] = {"step", "slowdown", "tokens/s", "MFU", "compute", "TP", "bubble", "PP exp", "DP exp",
                         "DP total", "mem/rank"};
  size_t width = std::max<size_t>(key.size(), 8);
  for (const SweepPoint& p : points) width = std::max(width, p.label.size());
  // Columns 12 wide for values up to 11 characters ("1,234,567 s"): always a space between.
  out << std::left << std::setw(int(width) + 2) << key << std::right;
  for (const char* h : heads) out << std::setw(12) << h;
  out << "\n";
  for (const SweepPoint& p : points) {
    const SimResult& r = p.result;
    const StepTimes& t = r.time;
    out << std::left << std::setw(int(width) + 2) << p.label << std::right << std::setw(12)
        << format_seconds(t.step) << std::setw(12) << format_fixed(r.slowdown(), 2) + "x" << std::setw(12)
        << format_count(r.tokens_per_s()) << std::setw(12) << format_percent_sig(r.mfu()) << std::setw(12)
        << format_seconds(t.compute_fwd + t.compute_bwd) << std::setw(12) << format_seconds(t.tp) << std::setw(12)
        << format_seconds(t.bubble) << std::setw(12) << format_seconds(t.pp_exposed) << std::setw(12)
        << format_seconds(t.dp_exposed) << std::setw(12) << format_seconds(t.dp_total) << std::setw(12)
        << format_bytes(r.memory.total()) << (r.fits() ? "" : " (no fit)") << "\n";
  }
}

}  // namespace dtb::sim
