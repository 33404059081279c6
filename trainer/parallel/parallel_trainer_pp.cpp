// The training loop's data sampler and pipeline-boundary compression (issue 11): set up
// from the config, and the buffers' memory reported. The hooks themselves sit in
// parallel_trainer.cpp's forward_micro / backward_micro, train_step, save and resume.
#include <cstdio>

#include "train/checkpoint.hpp"
#include "usage_error.hpp"

#include "parallel/parallel_trainer.hpp"

namespace dtb::par {

void ParallelTrainer::setup_data_and_pp() {
  if (s_.sampler == "epoch") {
    sampler_ = std::make_unique<EpochSampler>(train_split_, s_.seq_len, s_.epoch_samples);
    sample_ids_.resize(size_t(rows_per_dp_));
  }
  const ParallelSettings& p = s_.parallel;
  if (p.pp_compress == "none") return;  // today's wire: no codec at all
  PpCompressSettings c;
  c.mode = parse_pp_mode(p.pp_compress);
  c.fw_bits = p.pp_fw_bits, c.bw_bits = p.pp_bw_bits, c.warmup_steps = p.pp_warmup_steps;
  c.stochastic = p.pp_rounding == "stochastic";
  c.seed = s_.seed;
  pp_codec_ = std::make_unique<PpCompressor>(c, rows_per_micro_, s_.seq_len, s_.model.n_embd, live_, coord_.pp,
                                             layout_.pp);
}

// Collective. Rank 0's line: what the pipeline boundaries sent and AQ-SGD's buffers' memory
// (every rank's buffers, both ends of every boundary; "" without compression). The two
// byte counts also go to the results file (@pp_buffer_bytes, @pp_buffer_bytes_world).
std::string ParallelTrainer::pp_buffer_report() {
  if (!pp_codec_) return "";
  const int64_t mine = int64_t(pp_codec_->buffer_bytes());
  const int64_t total = world_.untimed_sum(mine);
  const double most = world_.untimed_max(double(mine));
  summary_.pp_buffer_bytes = int64_t(most), summary_.pp_buffer_bytes_world = total;
  const ParallelSettings& p = s_.parallel;
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "pp_compress %s: fw %d bits, bw %d bits, %d warm-up steps, %s rounding; buffers %.2f MiB on the "
                "fullest rank, %.2f MiB over the world (%zu of %llu samples at this rank's boundaries)\n",
                p.pp_compress.c_str(), p.pp_fw_bits, p.pp_bw_bits, p.pp_warmup_steps, p.pp_rounding.c_str(),
                most / 1048576.0, double(total) / 1048576.0,
                std::max(pp_codec_->sent().size(), pp_codec_->received().size()),
                static_cast<unsigned long long>(sampler_ ? sampler_->size() : 0));
  return buf;
}

// Collective: the epoch cursor (every rank fills it alike) and, with AQ-SGD, every
// boundary's buffers gathered on world rank 0.
void ParallelTrainer::save_data_and_pp(CheckpointState& ck) {
  if (sampler_) {
    const EpochCursor at = sampler_->cursor(uint64_t(step_), s_.batch_size);
    ck.sampler = s_.sampler, ck.epoch_samples = sampler_->size(), ck.epoch = at.epoch, ck.epoch_position = at.position;
  }
  if (!pp_codec_ || s_.parallel.pp_compress != "aqsgd") return;
  ck.pp_compress = "aqsgd";
  ck.pp_buffer_width = int64_t(pp_codec_->row_values());
  ck.pp_buffers = gather_pp_buffers(world_, layout_, placement_, coord_, *pp_codec_,
                                    stage_bounds(s_.model.n_layer, layout_.pp, s_.parallel.stage_layers));
}

void ParallelTrainer::resume_data_and_pp(const CheckpointState& ck, const std::string& path) {
  if (ck.sampler != s_.sampler || (sampler_ && ck.epoch_samples != sampler_->size()))
    throw UsageError(path + ": checkpoint drew its batches with data.sampler = " + ck.sampler +
                     (ck.sampler == "epoch" ? " of " + std::to_string(ck.epoch_samples) + " samples" : "") +
                     "; this run's data.sampler / data.epoch_samples differ: the data order would not continue");
  if (pp_codec_ && s_.parallel.pp_compress == "aqsgd")
    load_pp_buffers(ck, path, *pp_codec_, stage_bounds(s_.model.n_layer, layout_.pp, s_.parallel.stage_layers),
                    coord_.pp);
}

}  // namespace dtb::par
