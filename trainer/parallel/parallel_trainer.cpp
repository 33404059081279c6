#include "parallel/parallel_trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "algorithms.hpp"
#include "cpu/kernels.hpp"
#include "provenance.hpp"
#include "train/bench.hpp"
#include "train/checkpoint.hpp"
#include "train/finite.hpp"
#include "train/memory_check.hpp"
#include "train/run_stopped.hpp"
#include "train/outputs.hpp"
#include "train/stop_signal.hpp"

namespace dtb::par {
namespace {

constexpr int kGatherTag = 7;
// Validation batches come from their own stream, so they never depend on training.
constexpr uint64_t kValSeedSalt = 0x76616c69646174ULL;
// AdamW's memory traffic per parameter (fp32): reads param, grad, m, v; writes param, m, v.
constexpr double kAdamBytesPerParam = 7 * sizeof(float);

std::span<std::byte> bytes_of(float* p, size_t n) { return std::as_writable_bytes(std::span<float>(p, n)); }
std::span<const std::byte> bytes_of(const float* p, size_t n) { return std::as_bytes(std::span<const float>(p, n)); }

Layout checked_layout(const TrainSettings& s, int world) {
  const Layout l{s.parallel.dp, s.parallel.pp, s.parallel.tp};
  if (l.world() != world)
    throw UsageError("parallel.dp x parallel.pp x parallel.tp = " + std::to_string(l.dp) + " x " +
                     std::to_string(l.pp) + " x " + std::to_string(l.tp) + " = " + std::to_string(l.world()) +
                     " ranks, but the run has " + std::to_string(world) +
                     (world == 1 ? " (launch it with mpirun -np " + std::to_string(l.world()) + ")" : " (mpirun -np)"));
  return l;
}

// A rank alone on the wall clock takes every core (train.threads = 0) unless told otherwise;
// ranks that share a machine run one kernel thread each; the virtual clock charges the main
// thread's CPU time, which would miss other threads' work.
int rank_threads(const TrainSettings& s) {
  const bool alone = s.parallel.world() == 1 && s.parallel.clock == "wall";
  const int threads = s.threads_set || alone ? s.threads : 1;
  if (threads != 1 && s.parallel.clock == "virtual" && s.parallel.device_gflops == 0)
    throw UsageError("train.threads = " + std::to_string(threads) +
                     ": must be 1 with net.clock=virtual and no device model (the clock "
                     "charges the main thread's CPU time)");
  return threads;
}

// Consecutive owned runs merged into ranges.
std::vector<Range> owned_ranges(const std::vector<ShardRun>& runs) {
  std::vector<Range> out;
  for (const ShardRun& r : runs) {
    if (!r.owned) continue;
    if (!out.empty() && out.back().offset + out.back().size == r.local) out.back().size += r.len;
    else out.push_back({r.local, r.len});
  }
  return out;
}

StageShard stage_shard(const TrainSettings& s, const Coord& c) {
  const std::vector<int> b = stage_bounds(s.model.n_layer, s.parallel.pp, s.parallel.stage_layers);
  return {b[size_t(c.pp)], b[size_t(c.pp) + 1], c.pp == 0, c.pp == s.parallel.pp - 1, c.tp, s.parallel.tp,
          s.parallel.vocab_parallel};
}

}  // namespace

Placement run_placement(const TrainSettings& s, int world_size) {
  return s.parallel.placement.empty() ? identity_placement(world_size)
                                      : load_placement(s.parallel.placement, world_size);
}

netem::Profile run_profile(const TrainSettings& s, int world_size) {
  netem::Profile p = s.parallel.net_profile.empty() ? netem::uniform_profile(world_size, 0, 0)
                                                    : netem::load_profile(s.parallel.net_profile, world_size);
  place_sites(p, run_placement(s, world_size), s.parallel.placement);
  attach_link_faults(p, s.faults);  // faults.outages, .bandwidth, .burst_* (train/faults.hpp)
  return p;
}

// The communicators of this rank's groups (Megatron's): TP, DP, PP, and the tied
// embedding's pair {first stage, last stage} (PP > 1 only).
struct ParallelTrainer::Groups {
  std::optional<coll::Communicator> tp, dp, pp, embed;
  std::optional<coll::Communicator> worker;  // this DP replica's TP x PP ranks: the norm's group (step_scalars.hpp)
};

class ParallelTrainer::TpAllreduce final : public TpReduce {
 public:
  TpAllreduce(coll::Communicator& comm, Timeline& tl) : comm_(comm), tl_(tl) {}
  void allreduce(float* data, size_t count) override {
    tl_.record().tp_comm += tl_.blocking(Traffic::kTp, [&] { coll::ring_allreduce(comm_, std::span<float>(data, count)); });
  }
  void allgather(float* data, size_t count) override {
    tl_.record().tp_comm += tl_.blocking(Traffic::kTp, [&] { coll::ring_allgather(comm_, std::span<float>(data, count)); });
  }

 private:
  coll::Communicator& comm_;
  Timeline& tl_;
};

ParallelTrainer::ParallelTrainer(const Config& config, coll::Communicator& world, std::ostream& log,
                                 const ComputeFactory& make_compute)
    : config_yaml_(config.to_yaml()),
      s_(train_settings(config)),
      log_(log),
      world_(world),
      layout_(checked_layout(s_, world.size())),
      placement_(run_placement(s_, world.size())),
      coord_(grid_coord(layout_, grid_rank_of(placement_, world.rank()))),
      schedule_(parse_schedule(s_.parallel.schedule)),
      g_(std::make_unique<Groups>()),
      train_split_(s_.data_path, "train", s_.model.vocab_size, s_.seq_len),
      val_split_(s_.data_path, "val", s_.model.vocab_size, s_.seq_len),
      rows_per_dp_(s_.batch_size / layout_.dp),
      rows_per_micro_(rows_per_dp_ / s_.parallel.microbatches),
      live_(live_microbatches(schedule_, coord_.pp, layout_.pp, s_.parallel.microbatches)) {
  set_num_threads(rank_threads(s_));
  g_->tp = world.split(tp_color(layout_, coord_), coord_.tp);
  g_->dp = world.split(dp_color(layout_, coord_), coord_.dp, netem::Stream::kDp);  // DP's own channel (timeline.hpp)
  g_->pp = world.split(pp_color(layout_, coord_), coord_.pp);
  const bool embed = layout_.pp > 1 && (coord_.pp == 0 || coord_.pp == layout_.pp - 1);
  g_->embed = world.split(embed ? pp_color(layout_, coord_) : -1, coord_.pp);
  const NormGroup norm = norm_group(norm_inputs());
  if (norm != NormGroup::kWorld) {
    const NormMember m = norm_member(norm, coord_, world.rank());
    g_->worker = world.split(m.color, m.key);
  }

  if (s_.backend == "cpu")  // a device stage's buffers live in device memory
    check_rank_memory(rank_memory(s_.model, stage_shard(s_, coord_), rows_per_micro_, s_.seq_len, live_, sizeof(float)),
                      [&](double x) { return world_.untimed_max(x); });
  model_ = make_compute(s_, stage_shard(s_, coord_), rows_per_micro_, live_);
  const double mb = s_.parallel.bucket_mb;  // 0 = one bucket (GradSync's 0)
  const size_t bucket = mb > 0 ? std::max<size_t>(1, size_t(mb * 1048576.0 / sizeof(float))) : 0;
  coll::CollParams params;
  params.servers = s_.parallel.servers;
  params.rounds = s_.parallel.rounds;
  // DiLoCo's workers sync no gradients: no DP group for the buckets, so each rank's norm
  // blocks are its whole buffer; the DP group averages pseudo-gradients instead.
  sync_ = std::make_unique<GradSync>(model_->num_params(), bucket, s_.strategy.local() ? nullptr : &*g_->dp, s_.parallel.zero1,
                                     s_.parallel.dp_algo, s_.parallel.codec, params,
                                     coll::parse_codec_scope(s_.parallel.codec_scope), s_.parallel.error_feedback);
  pieces_ = sync_->update_pieces(model_->segments());
  // Each bucket is one allreduce, so on a WAN one latency-bound round trip or more: the run
  // reports how many (the stage with the most, which bounds the step).
  summary_.dp_buckets = int64_t(world.untimed_max(double(sync_->buckets().size())));
  summary_.dp_bucket_mb = mb;
  // The norm's share (step_scalars.hpp): the whole owned shard where the sum stays in a
  // replica, else this rank's DP blocks of it.
  norm_ranges_ = norm == NormGroup::kWorld ? sync_->owned_blocks(owned_ranges(model_->runs()))
                                           : sync_->owned_buckets(owned_ranges(model_->runs()));
  model_->init_moments(sync_->state_size());
  if (s_.strategy.name == "cocktail")
    cocktail_ = std::make_unique<CocktailSGD>(s_.strategy, *g_->dp, s_.parallel.error_feedback,
                                              std::span<const float>(model_->params(), model_->num_params()));
  if (s_.strategy.name == "demo") demo_ = std::make_unique<DeMo>(s_.strategy, *g_->dp, model_->num_params(), s_.parallel.error_feedback);
  if (s_.strategy.diloco())
    diloco_ = std::make_unique<DiLoCo>(s_.strategy, *g_->dp, s_.parallel.dp_algo, params, s_.parallel.codec,
                                       coll::parse_codec_scope(s_.parallel.codec_scope), s_.parallel.error_feedback,
                                       std::span<const float>(model_->params(), model_->num_params()));
  if (s_.strategy.compressed()) setup_compressed_adam(*g_->dp, bucket, owned_ranges(model_->runs()));
  const double efficiency = s_.parallel.device_efficiency > 0 ? s_.parallel.device_efficiency : 1.0;
  const double device_rate = s_.parallel.device_gflops * 1e9 * efficiency;
  timeline_ = std::make_unique<Timeline>(world, [this] { return model_->flops(); }, device_rate,
                                         s_.parallel.device_memory_gbs * 1e9);
  timeline_->set_slowdown(s_.faults.factor(world.rank()));  // faults.slow_ranks (train/faults.hpp)
  tp_ = std::make_unique<TpAllreduce>(*g_->tp, *timeline_);
  inputs_.resize(size_t(rows_per_dp_) * s_.seq_len);
  targets_.resize(inputs_.size());
  grad_send_.assign(size_t(live_), std::vector<float>(size_t(rows_per_micro_) * s_.seq_len * s_.model.n_embd));
  act_sends_.resize(size_t(live_));
  grad_sends_.resize(size_t(live_));
  setup_data_and_pp();
  summary_.config_yaml = config_yaml_;
  summary_.num_params = int64_t(num_parameters(s_.model));
  summary_.flops_per_token = flops_per_token(s_.model, s_.seq_len);
  set_mfu_peak();
  summary_.layout = "dp=" + std::to_string(layout_.dp) + " pp=" + std::to_string(layout_.pp) +
                    " tp=" + std::to_string(layout_.tp) + " microbatches=" + std::to_string(s_.parallel.microbatches) +
                    " schedule=" + s_.parallel.schedule + (s_.parallel.zero1 ? " zero1" : "") +
                    (s_.parallel.vocab_parallel ? " vocab_parallel" : "");
  if (s_.privacy.dp_sgd) sample_ranges_ = owned_ranges(model_->runs());
  setup_privacy(*g_->dp);  // privacy.*: off leaves the run as it was
}

ParallelTrainer::~ParallelTrainer() = default;

// The peak MFU is counted against: the config's, the device model's, or, where compute is
// the CPU's own time, the OpenBLAS sgemm rate of this rank's largest block matmul (the MLP's
// first linear, micro-batch rows x C -> 4C/TP, as the model runs it), measured by every
// rank at once (oversubscribed ranks measure their share of the cores; one shape, so it
// costs one gemm's time, not a step's) and the fastest taken, so all ranks agree. A GPU's
// peak is not measured: without one of the keys its MFU is n/a.
void ParallelTrainer::set_mfu_peak() {
  const ParallelSettings& p = s_.parallel;
  if (p.mfu_peak_gflops > 0) {
    summary_.mfu_peak_gflops = p.mfu_peak_gflops, summary_.mfu_peak_source = "device.mfu_peak_gflops";
  } else if (p.device_gflops > 0) {
    summary_.mfu_peak_gflops = p.device_gflops, summary_.mfu_peak_source = "device.peak_gflops";
  } else if (s_.backend != "cpu") {
    summary_.mfu_peak_gflops = 0, summary_.mfu_peak_source = "none (device.backend = " + s_.backend + ")";
  } else {
    const int rows = rows_per_micro_ * s_.seq_len, C = s_.model.n_embd;
    const double mine = gemm_gflops(matmul_gemms(rows, C, 4 * C / layout_.tp, true)[0], 3);
    summary_.mfu_peak_gflops = world_.untimed_max(mine);
    summary_.mfu_peak_source = "measured sgemm";
  }
}

// ------------------------------------------------------------------ the pipeline

// A PP wait is the message's own transfer (alpha + n beta on its link) as PP comm, and
// waiting for the other stage's compute beyond that as pipeline bubble.
void ParallelTrainer::split_pp_wait(double wait, double transfer) {
  RankStepRecord& r = timeline_->record();
  r.pp_comm += std::min(wait, transfer);
  r.bubble += std::max(0.0, wait - transfer);
}

void ParallelTrainer::pp_recv(std::span<std::byte> data, int src, int tag) {
  coll::Communicator& pp = *g_->pp;
  const double wait = timeline_->blocking(Traffic::kPp, [&] { pp.recv(src, data, tag); });
  const int a = pp.global_rank(src), b = pp.global_rank(pp.rank());
  split_pp_wait(wait, pp.network().alpha(a, b) + double(data.size()) * pp.network().beta(a, b));
}

void ParallelTrainer::forward_micro(int m, const int32_t* inputs, const int32_t* targets, float& loss_sum) {
  StageCompute& model = *model_;
  coll::Communicator& pp = *g_->pp;
  const int slot = m % live_;
  const size_t btc = size_t(rows_per_micro_) * s_.seq_len * s_.model.n_embd;
  if (act_sends_[size_t(slot)].pending())  // the slot's last activation must be out before it is overwritten
    timeline_->post(Traffic::kPp, [&] { pp.wait(act_sends_[size_t(slot)]); });
  if (!model.shard().first && pp_codec_) {  // parallel.pp_compress: its message, decoded
    const std::span<std::byte> wire = pp_codec_->recv_buffer(pp_codec_->forward_bytes(m));
    pp_recv(wire, pp.rank() - 1, 2 * m);
    pp_codec_->decode_forward(m, wire, model.input(slot));
  } else if (!model.shard().first) {
    pp_recv(bytes_of(model.input(slot), btc), pp.rank() - 1, 2 * m);
  }
  timeline_->set_phase(Phase::kForward);
  const size_t offset = size_t(m) * rows_per_micro_ * s_.seq_len;
  const float loss = model.forward(slot, inputs + offset, targets + offset, *tp_);
  timeline_->set_phase(Phase::kHarness);
  if (model.shard().last) loss_sum += loss;
  else {
    const std::span<const std::byte> wire =
        pp_codec_ ? pp_codec_->encode_forward(slot, m, model.output(slot)) : bytes_of(model.output(slot), btc);
    timeline_->post(Traffic::kPp, [&] { act_sends_[size_t(slot)] = pp.isend(pp.rank() + 1, wire, 2 * m); });
  }
}

void ParallelTrainer::backward_micro(int m, bool last) {
  StageCompute& model = *model_;
  coll::Communicator& pp = *g_->pp;
  const int slot = m % live_;
  const size_t btc = size_t(rows_per_micro_) * s_.seq_len * s_.model.n_embd;
  if (!model.shard().last && pp_codec_) {
    const std::span<std::byte> wire = pp_codec_->recv_buffer(pp_codec_->backward_bytes());
    pp_recv(wire, pp.rank() + 1, 2 * m + 1);
    pp_codec_->decode_backward(wire, model.dresidual());
  } else if (!model.shard().last) {
    pp_recv(bytes_of(model.dresidual(), btc), pp.rank() + 1, 2 * m + 1);
  }
  timeline_->set_phase(Phase::kBackward);
  const float scale =
      micro_scale_.empty() ? 1.0f / float(grad_replicas() * s_.parallel.microbatches) : micro_scale_[size_t(m)];
  // The DP sync fires on the last micro-batch, bucket by bucket as the backward finishes them
  // (DP-SGD: after the noise, in finish_backward).
  auto ready = [&](size_t lo) {
    if (last && !s_.privacy.dp_sgd) sync_->ready(lo, model.grads(), [this](const std::function<void()>& fn) { launch(fn); });
  };
  model.backward(slot, scale, *tp_, ready);
  timeline_->set_phase(Phase::kHarness);
  if (model.shard().first) return;
  std::vector<float>& out = grad_send_[size_t(slot)];
  if (grad_sends_[size_t(slot)].pending()) timeline_->post(Traffic::kPp, [&] { pp.wait(grad_sends_[size_t(slot)]); });
  if (!pp_codec_) std::copy_n(model.dresidual(), out.size(), out.begin());
  const std::span<const std::byte> wire =
      pp_codec_ ? pp_codec_->encode_backward(slot, m, model.dresidual()) : bytes_of(out.data(), out.size());
  timeline_->post(Traffic::kPp, [&] { grad_sends_[size_t(slot)] = pp.isend(pp.rank() - 1, wire, 2 * m + 1); });
}

void ParallelTrainer::wait_sends() {
  for (auto* sends : {&act_sends_, &grad_sends_})
    for (coll::Request& r : *sends)
      if (r.pending()) timeline_->post(Traffic::kPp, [&] { g_->pp->wait(r); });
}

// After the last backward: the tied embedding's two gradient copies summed (first and last
// stage), then the DP buckets that hold the embeddings, then compute waits for the DP sync.
void ParallelTrainer::finish_backward() {
  wait_sends();
  if (g_->embed && s_.model.tie_embeddings) {  // untied: the last stage's lm_head is its own
    const size_t n = model_->wte_size();  // wte is at local offset 0
    coll::Communicator& e = *g_->embed;
    const double wait = timeline_->blocking(Traffic::kPp, [&] { coll::ring_allreduce(e, std::span<float>(model_->grads(), n)); });
    split_pp_wait(wait, coll::ring_allreduce_model(e.network(), e.ranks(), double(n * sizeof(float))));
  }
  if (s_.privacy.dp_sgd) dp_sgd_noise();
  sync_->ready(0, model_->grads(), [this](const std::function<void()>& fn) { launch(fn); });
  if (!diloco_) timeline_->join();  // DiLoCo's syncs are joined where they land (diloco_step)
  if (masked_) check_secure_sum();
}

// The scalars cross the network as floats, as they always have, so every layout's numbers
// stay what they were; a world of one sends nothing and keeps its sums in double, the
// numbers a single rank has always printed. Returns the time compute waited.
double ParallelTrainer::sum_over_world(std::span<double> values) { return sum_over(world_, values); }

double ParallelTrainer::sum_over(coll::Communicator& comm, std::span<double> values) {
  if (comm.size() == 1) return 0;
  std::vector<float> wire(values.begin(), values.end());
  // A few floats: a binomial tree, 2 floor(log2 W) latencies where a ring takes 2 (W - 1).
  const double wait = timeline_->blocking(Traffic::kOther, [&] { coll::tree_allreduce(comm, std::span<float>(wire)); });
  std::copy(wire.begin(), wire.end(), values.begin());
  return wait;
}

// The trainer's state as the norm's group depends on it (step_scalars.hpp).
NormInputs ParallelTrainer::norm_inputs() const {
  const FaultSettings& f = s_.faults;
  return {s_.strategy.name, compressing_, s_.parallel.zero1, s_.parallel.dp_algo,
          f.grad_spike_step > 0 && f.grad_spike_rank >= 0};
}

// The loss summed over the world as the tree in sum_over would sum it (tree_sum), gathered
// outside netem: it is only logged, so it costs no emulated time (a trainer reduces it
// asynchronously); a world of one keeps its own.
double ParallelTrainer::loss_off_clock(float mine) {
  if (world_.size() == 1) return mine;
  const std::vector<double> all = world_.untimed_allgather(mine);
  const std::vector<float> per_rank(all.begin(), all.end());
  return tree_sum(per_rank);
}

RankStepRecord ParallelTrainer::train_step(StepRecord& r) {
  Timeline& tl = *timeline_;
  tl.start_step(world_.rank(), step_);
  if (sampler_)
    sampler_->batch(s_.seed, uint64_t(step_), s_.batch_size, coord_.dp, layout_.dp, inputs_.data(), targets_.data(),
                    sample_ids_.data());
  else
    train_split_.batch(s_.seed, uint64_t(step_), s_.batch_size, s_.seq_len, coord_.dp, layout_.dp, inputs_.data(),
                       targets_.data());
  if (pp_codec_) pp_codec_->begin_step(step_, sample_ids_);
  if (hooks_) hooks_->after_batch(*this, inputs_, targets_);
  if (cadam_) set_compressing(cadam_->compressing(step_));
  model_->zero_grad();
  sync_->begin_step();
  begin_privacy_step();  // DP-SGD: the per-sample pass that fixes each sample's clip factor
  float loss_sum = 0;
  const int M = s_.parallel.microbatches;
  for (const Action& a : pipeline_schedule(schedule_, coord_.pp, layout_.pp, M)) {
    if (a.pass == Pass::kForward) forward_micro(a.microbatch, inputs_.data(), targets_.data(), loss_sum);
    else backward_micro(a.microbatch, a.microbatch == M - 1);
  }
  finish_backward();
  spike_gradients();  // faults.grad_spike_step (parallel_trainer_faults.cpp)

  // The global grad norm and the loss, each element counted once (step_scalars.hpp: over
  // the world, this replica's TP x PP ranks with the loss off the clock, or, DiLoCo and the
  // like, this worker's: each worker clips by its own norm and reports its own loss, rank
  // 0 worker 0's on its rows of the batch; nothing crosses between workers).
  const bool reports_loss = model_->shard().last && coord_.tp == 0;
  const NormGroup norm = norm_group(norm_inputs());
  double norm_loss[2] = {model_->sum_of_squares(norm_ranges_),
                         reports_loss ? loss_sum / float(grad_replicas() * M) : 0.0f};
  coll::Communicator& scalars = norm == NormGroup::kWorld ? world_ : *g_->worker;
  tl.record().other_comm += sum_over(scalars, std::span(norm_loss, size_t(norm_floats(norm))));
  if (norm == NormGroup::kReplica) norm_loss[1] = loss_off_clock(float(norm_loss[1]));
  if (compressing_) norm_loss[0] *= layout_.dp;  // the mean over workers of ||local gradient||^2 (compressed_adam.hpp)
  r.step = step_;
  r.loss = norm_loss[1];
  r.grad_norm = std::sqrt(norm_loss[0]);
  r.lr = optim_math(s_.kernels).learning_rate(s_.optim, int(step_), s_.steps);  // train.kernels' cosine
  // Without DiLoCo every rank sees the same values (the world's sums, or replicas' norms of
  // the same reduced gradient and the world's loss) and stops here. DiLoCo's sums stay
  // inside a worker: the workers agree first (control plane, no emulated time), so no worker
  // stops while another goes on into a collective.
  const bool finite = std::isfinite(r.loss) && std::isfinite(r.grad_norm);
  if (s_.strategy.local() ? world_.untimed_max(finite ? 0.0 : 1.0) > 0 : !finite) stop_non_finite(r);

  tl.set_phase(Phase::kOptimizer);
  if (cocktail_) cocktail_land();
  const auto charge_adam = [&] {
    for (const UpdatePiece& p : pieces_) tl.charge_memory(double(p.size) * kAdamBytesPerParam);
  };
  if (demo_) {
    demo_step(float(r.lr), float(clip_scale(r.grad_norm, s_.optim.grad_clip)));
    charge_adam();  // the simulator's optimizer_time charges every strategy alike
  } else if (compressing_) {
    compressed_adam_step(r);
    charge_adam();
  } else if (!skip_outlier(r)) {  // optim.outlier_z (parallel_trainer_faults.cpp)
    model_->adamw(pieces_, s_.optim, r.lr, step_ + 1, clip_scale(r.grad_norm, s_.optim.grad_clip));
    charge_adam();
  }
  if (s_.parallel.zero1) {
    const double wait = tl.blocking(Traffic::kDp, [&] { sync_->allgather_params(model_->params()); });
    tl.record().dp_total += wait;
    tl.record().dp_exposed += wait;
  }
  if (diloco_) diloco_step();
  if (cocktail_) cocktail_take();
  ++step_;
  const RankStepRecord& t = tl.finish_step();
  const double tokens = double(s_.batch_size) * s_.seq_len;
  r.time_ms = t.step_time * 1e3;
  r.tokens_per_s = t.step_time > 0 ? tokens / t.step_time : 0;
  r.gflops = t.step_time > 0 ? summary_.flops_per_token * tokens / t.step_time / 1e9 : 0;
  return t;
}

// DiLoCo's syncs after a step (dp_strategy.hpp). tau = 0 (DiLoCo): blocking on the DP
// channel, all of it exposed. tau > 0: the pseudo-gradient goes out on the DP channel
// while the next inner steps compute; tau steps later compute waits for the channel (the
// part not hidden is exposed) and the outer step lands. Landings first, then new starts.
void ParallelTrainer::diloco_step() {
  Timeline& tl = *timeline_;
  const int64_t done = step_ + 1;
  const int tau = s_.strategy.overlap_steps;
  const std::span<float> params(model_->params(), model_->num_params());
  for (int f = 0; f < diloco_->fragments(); ++f)
    if (tau > 0 && diloco_->lands(done, f)) {
      tl.join();
      diloco_->land(f, params);
    }
  for (int f = 0; f < diloco_->fragments(); ++f) {
    if (!diloco_->starts(done, f)) continue;
    tl.charge_memory(double(params.size()) / diloco_->fragments() * kOuterBytesPerParam);
    diloco_->take(f, params);
    if (tau > 0) {
      launch([this, f] { diloco_->send(f); });
      continue;
    }
    const double wait = tl.blocking(Traffic::kDp, [&] { diloco_->send(f); });
    tl.record().dp_total += wait;
    tl.record().dp_exposed += wait;
    diloco_->land(f, params);
  }
}

// ------------------------------------------------------------------ non-finite numbers

// The first element, in checkpoint order, of the flat buffer BUF (this rank's local
// layout) that is not finite, over the world (collective); kAllFinite if none or no host
// view (a device stage).
size_t ParallelTrainer::first_nonfinite_global(const float* buf) {
  size_t mine = kAllFinite;
  if (buf)
    for (const ShardRun& run : model_->runs())
      if (const size_t i = first_nonfinite(std::span<const float>(buf + run.local, run.len)); i != kAllFinite)
        mine = std::min(mine, run.global + i);
  // The max of -index is the smallest index (exact in a double below 2^53 parameters).
  const double first = world_.untimed_max(mine == kAllFinite ? -1e300 : -double(mine));
  return first < -1e299 ? kAllFinite : size_t(-first);
}

// Stops the run at this step, before the update: what went non-finite and where first
// (the gradients after the DP sync, else the parameters the step started from). Nothing
// later runs, so no checkpoint or update holds these numbers.
void ParallelTrainer::stop_non_finite(const StepRecord& r) {
  std::string where = "the values are finite on every rank";
  if (const size_t g = first_nonfinite_global(model_->grads()); g != kAllFinite)
    where = "first non-finite gradient: " + param_element_name(s_.model, g);
  else if (const size_t p = first_nonfinite_global(model_->params()); p != kAllFinite)
    where = "first non-finite parameter: " + param_element_name(s_.model, p);
  char head[120];
  std::snprintf(head, sizeof head, "step %lld: loss %g, gradient norm %g", static_cast<long long>(step_ + 1),
                r.loss, r.grad_norm);
  throw RunStopped(std::string(head) + " (" + where + "); stopped before the update, no checkpoint written" +
                   " (lower optim.lr, set optim.grad_clip, or resume from an earlier checkpoint)");
}

// ------------------------------------------------------------------ the loop

// Exposed comm is the communication this rank's compute waited for in this step (part of
// the step, so its share is at most 100%); hidden DP the DP sync that ran on the DP channel
// beside the backward. dtbench report shows both as means over ranks and steps.
std::string ParallelTrainer::step_line(const StepRecord& r, const RankStepRecord& t) const {
  const double exposed = t.tp_comm + t.pp_comm + t.dp_exposed + t.other_comm;
  const double hidden = std::max(0.0, t.dp_total - t.dp_exposed);
  const double peak = summary_.mfu_peak_gflops;
  char mfu[48] = "n/a";
  if (peak > 0) {  // three significant digits: a tiny model on a fast device is not "0.0%"
    const double pct = 100.0 * r.gflops / (peak * layout_.world());
    const int digits = pct > 0 ? std::clamp(2 - int(std::floor(std::log10(pct))), 1, 12) : 1;
    std::snprintf(mfu, sizeof mfu, "%.*f%%", digits, pct);
  }
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "step %5lld/%d | loss %.4f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s | %.1f GFLOP/s | %s MFU | "
                "exposed comm %.2f ms (%.1f%%) | hidden DP %.2f ms | bubble %.2f ms",
                static_cast<long long>(r.step + 1), s_.steps, r.loss, r.grad_norm, r.lr, r.time_ms, r.tokens_per_s,
                r.gflops, mfu, exposed * 1e3, t.step_time > 0 ? 100.0 * exposed / t.step_time : 0.0, hidden * 1e3,
                t.bubble * 1e3);
  return buf + outlier_text();
}

namespace {

// Per rank, the mean over the steps after the first (warm-up): compute, communication, the
// harness overhead (thread CPU outside the kernels and outside communication calls: data
// loading, schedule, bookkeeping) as a share of the step, and the CPU spent inside
// communication calls (copies, and MPI's polling while it waits: not charged to the clock).
std::string rank_table(const std::vector<RankStepRecord>& rows) {
  std::string out = "# rank | compute ms (fwd+bwd+opt) | tp ms | pp ms | bubble ms | dp total/exposed ms | "
                    "step ms | harness % of step | CPU in comm calls ms\n";
  std::vector<RankStepRecord> sum;
  std::vector<int> n;
  for (const RankStepRecord& r : rows) {
    if (r.step == rows.front().step && rows.size() > 1 && rows.back().step != r.step) continue;  // warm-up
    const size_t k = size_t(r.rank);
    if (sum.size() <= k) sum.resize(k + 1), n.resize(k + 1);
    RankStepRecord& a = sum[k];
    a.forward += r.forward, a.backward += r.backward, a.optimizer += r.optimizer, a.harness += r.harness;
    a.tp_comm += r.tp_comm, a.pp_comm += r.pp_comm, a.bubble += r.bubble, a.dp_total += r.dp_total;
    a.dp_exposed += r.dp_exposed, a.step_time += r.step_time, a.kernel_cpu += r.kernel_cpu, a.comm_cpu += r.comm_cpu;
    ++n[k];
  }
  for (size_t k = 0; k < sum.size(); ++k) {
    if (n[k] == 0) continue;
    const RankStepRecord& a = sum[k];
    const double f = 1e3 / n[k];
    char buf[240];
    std::snprintf(buf, sizeof buf, "# %4zu | %8.3f | %7.3f | %7.3f | %7.3f | %7.3f / %7.3f | %8.3f | %5.1f%% | %7.3f\n", k,
                  (a.forward + a.backward + a.optimizer) * f, a.tp_comm * f, a.pp_comm * f, a.bubble * f,
                  a.dp_total * f, a.dp_exposed * f, a.step_time * f,
                  a.step_time > 0 ? 100.0 * a.harness / a.step_time : 0.0, a.comm_cpu * f);
    out += buf;
  }
  return out;
}

}  // namespace

// "DP buckets 4 of <= 1 MiB": how many allreduces the gradient sync launches per step.
std::string ParallelTrainer::dp_bucket_text() const {
  std::ostringstream out;
  out << "DP buckets " << summary_.dp_buckets;
  if (summary_.dp_bucket_mb > 0) out << " of <= " << summary_.dp_bucket_mb << " MiB (parallel.bucket_mb)";
  else out << " (parallel.bucket_mb 0: the whole gradient)";
  return out.str();
}

const TrainRunSummary& ParallelTrainer::run(const std::string& command_line) {
  const bool root = world_.rank() == 0;
  summary_.command_line = command_line;
  if (const std::string w = netem::single_site_warning(world_.network().profile()); root && !w.empty()) log_ << w << "\n";
  if (root)
    log_ << "model " << s_.name << ": " << summary_.num_params << " parameters on " << layout_.world()
         << (layout_.world() == 1 ? " rank (" : " ranks (") << summary_.layout << "), " << model_->describe()
         << ", clock " << s_.parallel.clock
         << (!timeline_->wall() || layout_.dp == 1 ? ""
             : timeline_->comm_thread()            ? " (DP buckets on a comm thread)"
                                                   : " (DP buckets synchronous: MPI granted no MPI_THREAD_MULTIPLE)")
         << (layout_.dp == 1 ? "" : ", " + dp_bucket_text())
         << ", dataset " << s_.data_path << " (" << train_split_.size() << " train / " << val_split_.size()
         << " val tokens), MFU peak " << summary_.mfu_peak_gflops << " GFLOP/s per rank (" << summary_.mfu_peak_source
         << ")\n";
  if (results_path_.empty()) results_path_ = chosen_results_path();  // prepare_outputs() was not called
  std::vector<RankStepRecord> mine;
  while (step_ < s_.steps) {
    StepRecord r{};
    if (hooks_) hooks_->before_step(*this);
    mine.push_back(train_step(r));
    if (hooks_) hooks_->after_step(*this);
    summary_.steps.push_back(r);
    if (root && (step_ % s_.log_every == 0 || step_ == s_.steps)) log_ << step_line(r, mine.back()) << "\n";
    if (s_.val_every > 0 && (step_ % s_.val_every == 0 || step_ == s_.steps)) {
      double val_loss = 0;
      timeline_->outside_steps([&] { val_loss = validate(); });  // a sync in flight pauses meanwhile
      summary_.val.push_back({step_, val_loss});
      if (root) log_ << "val loss " << summary_.val.back().loss << " after step " << step_ << "\n";
    }
    const bool periodic = s_.checkpoint_every > 0 && step_ % s_.checkpoint_every == 0;
    if (!s_.checkpoint_path.empty() && periodic && step_ < s_.steps) save(periodic_checkpoint_path(s_.checkpoint_path, step_));
    if (step_ == s_.steps) break;
    // A killed run keeps its metrics: the results so far, rewritten (temporary, rename).
    if (root && s_.results_every > 0 && step_ % s_.results_every == 0) write_results("running");
    if (stop_agreed()) {
      stop_with_checkpoint();
      break;
    }
  }
  if (!s_.checkpoint_path.empty() && !stopped_by_) {
    save(s_.checkpoint_path);
    if (root) log_ << "checkpoint " << s_.checkpoint_path << "\n";
  }
  summary_.rank_steps = gather_records(mine);
  const std::string buffers = pp_buffer_report();
  const std::string privacy = privacy_report();
  if (root) {
    log_ << rank_table(summary_.rank_steps) << buffers << privacy;
    if (hooks_) hooks_->before_results(summary_);
    write_results(stopped_by_ ? std::string("stopped by ") + signal_name(stopped_by_) : "complete");
    log_ << "results " << results_path_ << "\n";
    if (stopped_by_)
      log_ << "stopped by " << signal_name(stopped_by_) << " after step " << step_ << "/" << s_.steps
           << ": checkpoint " << stop_checkpoint_ << ", results " << results_path_ << "; continue with --resume "
           << stop_checkpoint_ << " (exit code " << kStoppedExitCode << ")" << std::endl;
  }
  return summary_;
}

void ParallelTrainer::run_steps(int64_t until) {
  while (step_ < until) {
    StepRecord r{};
    if (hooks_) hooks_->before_step(*this);
    train_step(r);
    if (hooks_) hooks_->after_step(*this);
  }
}

bool ParallelTrainer::stop_agreed() {
  const int mine = stop_signal();
  // Ranks get a signal at different times (or one rank only): the step to stop at is the
  // first after which any rank has one. Control plane: no emulated time, bitwise the same run.
  stopped_by_ = world_.size() == 1 ? mine : int(world_.untimed_max(double(mine)));
  return stopped_by_ != 0;
}

void ParallelTrainer::stop_with_checkpoint() {
  stop_checkpoint_ = stop_checkpoint_path(s_, results_path_, step_);
  const bool periodic = !s_.checkpoint_path.empty() && s_.checkpoint_every > 0 && step_ % s_.checkpoint_every == 0;
  if (!periodic) save(stop_checkpoint_);  // else this step's periodic checkpoint is it
  if (world_.rank() == 0) log_ << "checkpoint " << stop_checkpoint_ << "\n";
}

void ParallelTrainer::write_results(const std::string& status) {
  summary_.status = status;
  if (!privacy_writer_) return write_train_results(results_path_, summary_);
  // privacy.*: the /privacy group beside whatever else the run writes (verify's commitments).
  const std::function<void(h5::File&)> others = summary_.write_more;
  summary_.write_more = [&](h5::File& f) {
    if (others) others(f);
    privacy_writer_(f);
  };
  write_train_results(results_path_, summary_);
  summary_.write_more = others;
}

void ParallelTrainer::prepare_outputs(bool overwrite) {
  results_path_ = chosen_results_path();
  std::string error;
  if (world_.rank() == 0) {
    try {
      for (const std::string& target : {results_path_, checkpoint_base(s_, results_path_)})
        for (const std::string& f : remove_stale_temporaries(target))
          log_ << "removed " << f << " (the temporary of an interrupted write)\n";
      std::vector<std::string> files = planned_checkpoints(s_, step_);
      files.insert(files.begin(), results_path_);
      check_outputs(files, overwrite);
    } catch (const UsageError& e) {
      error = e.what();
    }
  }
  if (world_.untimed_max(error.empty() ? 0.0 : 1.0) > 0) throw UsageError(error);
}

double ParallelTrainer::validate() {
  const int M = s_.parallel.microbatches;
  double total = 0;
  if (pp_codec_) pp_codec_->begin_validation();
  for (int i = 0; i < s_.val_batches; ++i) {
    val_split_.batch(s_.seed ^ kValSeedSalt, uint64_t(i), s_.batch_size, s_.seq_len, coord_.dp, layout_.dp,
                     inputs_.data(), targets_.data());
    float loss_sum = 0;
    for (int m = 0; m < M; ++m) forward_micro(m, inputs_.data(), targets_.data(), loss_sum);
    if (model_->shard().last && coord_.tp == 0) total += loss_sum / float(layout_.dp * M);
    // Kept in the precision it travels in (sum_over_world): float where ranks send it (the
    // double sum of two floats is exact, so this rounds as a float sum would), double alone.
    if (world_.size() > 1) total = float(total);
  }
  wait_sends();
  sum_over_world(std::span<double>(&total, 1));
  return total / s_.val_batches;
}

// train.results, or results/runs/<name>-<date>-<time>.h5, e.g. tiny-20261122-101503.h5 (UTC).
std::string ParallelTrainer::chosen_results_path() const {
  return s_.results_path.empty() ? "results/runs/" + s_.name + "-" + utc_file_stamp() + ".h5" : s_.results_path;
}

std::vector<RankStepRecord> ParallelTrainer::gather_records(const std::vector<RankStepRecord>& mine) {
  const size_t bytes = mine.size() * sizeof(RankStepRecord);
  if (world_.rank() != 0) {
    world_.send(0, std::as_bytes(std::span(mine)), kGatherTag);
    return {};
  }
  std::vector<RankStepRecord> all = mine;
  std::vector<RankStepRecord> theirs(mine.size());
  for (int r = 1; r < world_.size(); ++r) {
    world_.recv(r, std::as_writable_bytes(std::span(theirs)).first(bytes), kGatherTag);
    all.insert(all.end(), theirs.begin(), theirs.end());
  }
  return all;
}

// ------------------------------------------------------------------ checkpoints

// Full GPT-layout params and moments on world rank 0, from the DP-rank-0 replica of every
// (stage, TP) shard; each global element from its owner.
void ParallelTrainer::gather_state(std::vector<float>* params, std::vector<float>* m, std::vector<float>* v) {
  std::vector<float> local_p, local_m, local_v;
  model_->get_state(&local_p, &local_m, &local_v);
  local_m = sync_->gather_state(local_m);
  local_v = sync_->gather_state(local_v);
  std::vector<std::vector<float>> full = gather_worker({&local_p, &local_m, &local_v}, 0);
  if (world_.rank() != 0) return;
  *params = std::move(full[0]), *m = std::move(full[1]), *v = std::move(full[2]);
}

// Arrays laid out like this rank's parameters (LOCAL), of DP replica WORKER, in GPT's
// layout on world rank 0 (empty elsewhere); each global element from its owner. Collective.
std::vector<std::vector<float>> ParallelTrainer::gather_worker(const std::vector<const std::vector<float>*>& local,
                                                               int worker) {
  const size_t total = num_parameters(s_.model), k = local.size();
  const bool root = world_.rank() == 0;
  if (coord_.dp == worker && !root)
    for (const std::vector<float>* a : local) world_.send(0, bytes_of(a->data(), a->size()), kGatherTag);
  if (!root) return {};
  std::vector<std::vector<float>> out(k, std::vector<float>(total, 0.0f));
  for (int pp = 0; pp < layout_.pp; ++pp)
    for (int tp = 0; tp < layout_.tp; ++tp) {
      const Coord c{worker, pp, tp};
      const StageShard shard = stage_shard(s_, c);
      const int src = placement_.ranks[size_t(grid_rank(layout_, c))];
      std::vector<std::vector<float>> bufs(k);
      for (size_t a = 0; a < k; ++a) {
        if (src == 0) {
          bufs[a] = *local[a];
        } else {
          bufs[a].resize(StageModel::shard_size(s_.model, shard));
          world_.recv(src, bytes_of(bufs[a].data(), bufs[a].size()), kGatherTag);
        }
      }
      // Rank 0's own buffer in its compute's layout (a device stage's is GPT's); the others' are StageModel's.
      const std::vector<ShardRun> runs = src == 0 ? model_->runs() : StageModel::shard_runs(s_.model, shard);
      for (const ShardRun& r : runs)
        if (r.owned)
          for (size_t a = 0; a < k; ++a)
            std::copy_n(bufs[a].begin() + ptrdiff_t(r.local), r.len, out[a].begin() + ptrdiff_t(r.global));
    }
  return out;
}

// This rank's slices of a GPT-layout array.
std::vector<float> ParallelTrainer::localize(const std::vector<float>& global) const {
  std::vector<float> local(model_->num_params());
  for (const ShardRun& r : model_->runs())
    std::copy_n(global.begin() + ptrdiff_t(r.global), r.len, local.begin() + ptrdiff_t(r.local));
  return local;
}

std::vector<float> ParallelTrainer::gather_params() {
  std::vector<float> p, m, v;
  gather_state(&p, &m, &v);
  return p;
}

CheckpointState ParallelTrainer::checkpoint_state() {
  CheckpointState ck;
  gather_state(&ck.params, &ck.adam_m, &ck.adam_v);
  save_data_and_pp(ck);  // collective: the epoch cursor and AQ-SGD's buffers
  ck.model = s_.model;
  ck.step = step_;
  ck.seed = s_.seed;
  ck.data_cursor = uint64_t(step_);
  ck.config_yaml = config_yaml_;
  if (diloco_) save_strategy(ck);
  if (cocktail_ || demo_) save_compressed(ck);
  if (s_.outlier_z > 0) ck.outlier_state = outlier_.state();  // optim.outlier_z (rank 0's: DiLoCo's worker 0's)
  if (cadam_) save_compressed_adam(ck);
  return ck;
}

void ParallelTrainer::save(const std::string& path) {
  const CheckpointState ck = checkpoint_state();
  // The last update may have made a finite step's parameters non-finite: such a state is
  // never saved (rank 0 looks, every rank stops).
  std::string bad;
  if (world_.rank() == 0)
    for (const auto& [name, buf] : {std::pair{"params", &ck.params}, {"adam/m", &ck.adam_m}, {"adam/v", &ck.adam_v}})
      if (const size_t i = first_nonfinite(*buf); bad.empty() && i != kAllFinite)
        bad = std::string(name) + ", " + param_element_name(s_.model, i);
  if (world_.untimed_max(bad.empty() ? 0.0 : 1.0) > 0)
    throw RunStopped("step " + std::to_string(step_) + ": the state to checkpoint holds a non-finite value (" + bad +
                     "); no checkpoint written to " + path);
  if (world_.rank() == 0) save_checkpoint(path, ck);
}

void ParallelTrainer::resume(const std::string& path) {
  restore(load_checkpoint(path), path);
  if (world_.rank() == 0) log_ << "resumed from " << path << " at step " << step_ << "\n";
}

void ParallelTrainer::restore(const CheckpointState& ck, const std::string& path) {
  if (timeline_->comm_thread()) timeline_->join();  // no send in flight reads the buffers restored below
  const GPTConfig& a = ck.model;
  const GPTConfig& b = s_.model;
  if (a != b)
    throw UsageError(path + ": checkpoint model shape differs from the config's model.* keys");
  if (ck.seed != s_.seed)
    throw UsageError(path + ": checkpoint seed " + std::to_string(ck.seed) + " differs from train.seed = " +
                     std::to_string(s_.seed) + "; the data order would not continue");
  step_ = ck.step;
  if (diloco_) {
    resume_strategy(ck, path);
  } else if (cocktail_ || demo_) {
    resume_compressed(ck, path);
  } else {
    model_->set_state(localize(ck.params), sync_->shard_state(localize(ck.adam_m)), sync_->shard_state(localize(ck.adam_v)));
  }
  if (cadam_) resume_compressed_adam(ck, path);
  resume_data_and_pp(ck, path);  // the sampler checked, AQ-SGD's buffers loaded
  if (s_.outlier_z > 0 && !ck.outlier_state.empty()) outlier_.restore(ck.outlier_state);
}

}  // namespace dtb::par

namespace dtb::par {

// ------------------------------------------------------------------ DiLoCo's checkpoint state

namespace {
std::string worker_array(int worker, const char* what) { return "diloco/worker" + std::to_string(worker) + "/" + what; }
}  // namespace

// Worker 0's parameters and moments are the checkpoint's own; every other worker's, every
// worker's error-feedback residual, and the shared anchor and outer momentum go beside them.
void ParallelTrainer::save_strategy(CheckpointState& ck) {
  std::vector<float> p, m, v;
  model_->get_state(&p, &m, &v);
  if (timeline_->comm_thread()) timeline_->join();  // syncs in flight on the comm thread: their sums are in
  const std::vector<float> residual = diloco_->residual();
  std::vector<std::vector<float>> shared =
      gather_worker({&diloco_->anchor(), &diloco_->momentum(), &diloco_->in_flight()}, 0);
  if (world_.rank() == 0) {
    ck.strategy.emplace_back("diloco/anchor", std::move(shared[0]));
    ck.strategy.emplace_back("diloco/outer_momentum", std::move(shared[1]));
    ck.strategy.emplace_back("diloco/in_flight", std::move(shared[2]));
  }
  for (int d = 0; d < layout_.dp; ++d) {
    std::vector<std::vector<float>> w = gather_worker({&p, &m, &v, &residual}, d);
    if (world_.rank() != 0) continue;
    if (d > 0) {
      ck.strategy.emplace_back(worker_array(d, "params"), std::move(w[0]));
      ck.strategy.emplace_back(worker_array(d, "adam_m"), std::move(w[1]));
      ck.strategy.emplace_back(worker_array(d, "adam_v"), std::move(w[2]));
    }
    ck.strategy.emplace_back(worker_array(d, "residual"), std::move(w[3]));
  }
}

// Each rank takes its worker's replica. A checkpoint without DiLoCo state (a DDP run's)
// starts every worker, and the anchor, from its parameters.
void ParallelTrainer::resume_strategy(const CheckpointState& ck, const std::string& path) {
  const int d = coord_.dp;
  const bool has = ck.strategy_array("diloco/anchor") != nullptr;
  int workers = 0;
  while (ck.strategy_array(worker_array(workers, "residual"))) ++workers;
  if (has && workers != layout_.dp)
    throw UsageError(path + ": holds " + std::to_string(workers) + " DiLoCo workers, the run has parallel.dp = " +
                     std::to_string(layout_.dp) + " (resume with the same DP, or from a checkpoint at an outer step's end)");
  auto array = [&](const char* what, const std::vector<float>& own) -> const std::vector<float>& {
    return has && d > 0 ? *ck.strategy_array(worker_array(d, what)) : own;
  };
  model_->set_state(localize(array("params", ck.params)), localize(array("adam_m", ck.adam_m)),
                    localize(array("adam_v", ck.adam_v)));
  const std::vector<float> zeros(model_->num_params(), 0.0f);
  if (!has) {
    diloco_->restore(localize(ck.params), zeros, zeros, zeros, step_);
    return;
  }
  diloco_->restore(localize(*ck.strategy_array("diloco/anchor")), localize(*ck.strategy_array("diloco/outer_momentum")),
                   localize(*ck.strategy_array(worker_array(d, "residual"))),
                   localize(*ck.strategy_array("diloco/in_flight")), step_);
}

}  // namespace dtb::par
