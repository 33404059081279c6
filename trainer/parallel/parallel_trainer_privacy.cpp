// privacy.* in the training loop (issue 16): DP-SGD (privacy/dp_sgd.hpp) and secure
// aggregation of the DP buckets (privacy/secure_agg.hpp). The hooks sit in
// parallel_trainer.cpp's train_step, backward_micro and finish_backward; with both keys off
// none of this runs and the step is what it was.
//
// DP-SGD's per-sample gradients come from the model's own forward and backward, with one
// sample per micro-batch (privacy_config.cpp enforces it), in two passes over the pipeline
// schedule, as Lee & Kifer 2021 and ghost clipping (Li et al. 2022) do:
//   1. every micro-batch's backward alone into the gradient buffer: its squared norm over the
//      elements this rank counts once, then the buffer zeroed; the replica's squared norms
//      summed over its TP and PP ranks (each holds a part of every sample's gradient), so a
//      sample's norm covers every parameter, however the layout splits them;
//   2. the ordinary step, each micro-batch's loss scaled by its clip factor / B: the
//      buffer ends holding sum_i clip_i g_i / B, and DP rank 0 adds N(0, sigma^2 C^2) / B
//      (Opacus' distributed mode: the noise once, on one rank) before the DP sum.
// Pass 1 costs one more forward and backward per step; Opacus instead keeps per-sample
// gradients in memory (B copies of each weight gradient).
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "algorithms.hpp"
#include "h5file.hpp"
#include "parallel/parallel_trainer.hpp"
#include "privacy/accountant.hpp"
#include "privacy/dp_sgd.hpp"
#include "train/run_stopped.hpp"

namespace dtb::par {

void ParallelTrainer::setup_privacy(coll::Communicator& dp) {
  dp_comm_ = &dp;
  const privacy::PrivacySettings& p = s_.privacy;
  // A sample lives on one DP replica: its norm's parts are on that replica's TP x PP ranks.
  if (p.dp_sgd && layout_.tp * layout_.pp > 1)
    replica_comm_ = world_.split(coord_.dp, coord_.tp + coord_.pp * layout_.tp);
  if (!p.secure_agg || layout_.dp == 1) return;  // one DP rank: no sum to hide
  secagg_ = std::make_unique<privacy::SecureAggregator>(coord_.dp, layout_.dp, p.scale_bits);
  masked_ = std::make_unique<privacy::MaskedBuckets>(*secagg_, sync_->buckets());
  sync_->set_masker(masked_.get());
}

void ParallelTrainer::begin_privacy_step() {
  if (masked_) {
    if (keyx_bytes_ == 0) secure_agg_keys();  // this process's first step
    masked_->begin_step(step_);
  }
  if (s_.privacy.dp_sgd) dp_sgd_clip_factors();
}

// Bonawitz et al.'s AdvertiseKeys round, peer to peer: every DP rank's X25519 public key to
// every other (a ring allgather of 32 bytes each on the DP channel, timed by netem and
// charged to this step as exposed DP time), then each pair's key derived locally.
void ParallelTrainer::secure_agg_keys() {
  constexpr size_t kFloatsPerKey = sizeof(privacy::PublicKey) / sizeof(float);
  const int P = layout_.dp;
  std::vector<float> wire(kFloatsPerKey * size_t(P));
  std::memcpy(wire.data() + kFloatsPerKey * size_t(coord_.dp), secagg_->public_key().data(), sizeof(privacy::PublicKey));
  Timeline& tl = *timeline_;
  const coll::LinkStats before = world_.stats();
  const double wait = tl.blocking(Traffic::kDp, [&] { coll::ring_allgather(*dp_comm_, wire); });
  const coll::LinkStats& after = world_.stats();
  keyx_bytes_ = int64_t(after.bytes_intra + after.bytes_inter - before.bytes_intra - before.bytes_inter);
  keyx_seconds_ = wait;
  tl.record().dp_total += wait;
  tl.record().dp_exposed += wait;
  std::vector<privacy::PublicKey> keys(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) std::memcpy(keys[size_t(r)].data(), wire.data() + kFloatsPerKey * size_t(r), keys[0].size());
  secagg_->set_peer_keys(keys);
}

// Pass 1 (above): each of this DP replica's samples' squared gradient norm, summed over the
// replica's TP x PP ranks (none to sum over with TP = PP = 1), into its micro-batch's loss
// scale for pass 2.
void ParallelTrainer::dp_sgd_clip_factors() {
  const int M = s_.parallel.microbatches;
  std::vector<double> sq(size_t(M), 0.0);  // one sample per micro-batch
  micro_scale_.assign(size_t(M), 1.0f);    // a sample's own gradient, unscaled
  float unused = 0;
  for (const Action& a : pipeline_schedule(schedule_, coord_.pp, layout_.pp, M)) {
    if (a.pass == Pass::kForward) {
      forward_micro(a.microbatch, inputs_.data(), targets_.data(), unused);
      continue;
    }
    backward_micro(a.microbatch, false);
    timeline_->set_phase(Phase::kBackward);
    sq[size_t(a.microbatch)] = model_->sum_of_squares(sample_ranges_);
    model_->zero_grad();
    timeline_->set_phase(Phase::kHarness);
  }
  wait_sends();
  if (replica_comm_) timeline_->record().other_comm += sum_over(*replica_comm_, sq);
  const float B = float(s_.batch_size);
  for (int m = 0; m < M; ++m)
    micro_scale_[size_t(m)] = float(privacy::clip_factor(std::sqrt(sq[size_t(m)]), s_.privacy.clip_norm)) / B;
}

// N(0, sigma^2 C^2) on the sum, divided by B like the sum: on DP rank 0 only, before the
// DP buckets leave (secure aggregation masks it with the rest).
void ParallelTrainer::dp_sgd_noise() {
  const double stddev = s_.privacy.noise_multiplier * s_.privacy.clip_norm / s_.batch_size;
  if (coord_.dp != 0 || stddev == 0) return;
  timeline_->set_phase(Phase::kOptimizer);
  privacy::add_gaussian_noise(std::span<float>(model_->grads(), model_->num_params()), model_->runs(), s_.seed,
                              step_, stddev);
  timeline_->set_phase(Phase::kHarness);
}

// Every rank sees the same sums, so every rank stops at the same step.
void ParallelTrainer::check_secure_sum() {
  if (const int count = masked_->refused_count(); count >= 0)
    throw RunStopped("step " + std::to_string(step_ + 1) + ": " + privacy::dropped_rank_message(count, layout_.dp));
}

std::string ParallelTrainer::privacy_report() {
  const privacy::PrivacySettings& p = s_.privacy;
  if (!p.any()) return "";
  const int64_t saturated = world_.untimed_sum(secagg_ ? secagg_->saturated() : 0);
  const int64_t keyx_bytes = world_.untimed_sum(keyx_bytes_);
  const double keyx_seconds = world_.untimed_max(keyx_seconds_);
  if (world_.rank() != 0) return "";
  std::ostringstream out;
  privacy::Epsilon eps{0, 0};
  double q = 0;
  const std::vector<double> orders = privacy::default_orders();
  std::vector<double> rdp;
  if (p.dp_sgd) {
    q = double(s_.batch_size) / double(sampler_->size());
    for (double a : orders) rdp.push_back(privacy::rdp_sampled_gaussian(q, p.noise_multiplier, a, double(step_)));
    eps = privacy::epsilon_from_rdp(orders, rdp, p.delta);
    out << "privacy: DP-SGD sigma " << p.noise_multiplier << ", clip " << p.clip_norm << ", q = " << s_.batch_size
        << "/" << sampler_->size() << ", " << step_ << " steps: epsilon " << eps.epsilon << " at delta " << p.delta
        << " (RDP order " << eps.order
        << "; the Poisson-sampling analysis, applied to shuffled fixed-size batches as Abadi et al. do)\n";
  }
  if (secagg_)
    out << "privacy: secure aggregation over " << layout_.dp << " DP ranks (Z_2^32, fixed point 2^-" << p.scale_bits
        << "): key exchange " << keyx_bytes << " bytes, " << keyx_seconds * 1e3 << " ms; " << saturated
        << " values clamped to the fixed-point range\n";
  else if (p.secure_agg)
    out << "privacy: secure aggregation is off in effect: parallel.dp = 1, no DP sum to mask\n";
  privacy_writer_ = [=, this](h5::File& f) {
    f.write<int64_t>("privacy/secure_agg_saturated", std::vector<int64_t>{saturated});
    if (p.dp_sgd) {
      f.write<double>("privacy/orders", orders);
      f.write<double>("privacy/rdp", rdp);
    }
    f.set_attr("privacy", "dp_sgd", int64_t(p.dp_sgd));
    f.set_attr("privacy", "noise_multiplier", p.dp_sgd ? p.noise_multiplier : 0.0);
    f.set_attr("privacy", "clip_norm", p.dp_sgd ? p.clip_norm : 0.0);
    f.set_attr("privacy", "delta", p.delta);
    f.set_attr("privacy", "sample_rate", q);
    f.set_attr("privacy", "steps", int64_t(step_));
    f.set_attr("privacy", "epsilon", p.dp_sgd ? eps.epsilon : std::numeric_limits<double>::infinity());
    f.set_attr("privacy", "rdp_order", eps.order);
    f.set_attr("privacy", "sampling", std::string(p.dp_sgd ? "fixed-size batches of a shuffled epoch; epsilon from "
                                                             "the Poisson-subsampled Gaussian RDP analysis" : "none"));
    f.set_attr("privacy", "secure_agg", int64_t(secagg_ != nullptr));
    f.set_attr("privacy", "scale_bits", int64_t(p.scale_bits));
    f.set_attr("privacy", "keyx_bytes", keyx_bytes);
    f.set_attr("privacy", "keyx_seconds", keyx_seconds);
  };
  return out.str();
}

}  // namespace dtb::par
