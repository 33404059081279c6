#include "parallel/parallel_trainer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

#include "algorithms.hpp"
#include "cpu/kernels.hpp"
#include "provenance.hpp"
#include "train/bench.hpp"
#include "train/checkpoint.hpp"
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
  return p;
}

// The communicators of this rank's groups (Megatron's): TP, DP, PP, and the tied
// embedding's pair {first stage, last stage} (PP > 1 only).
struct ParallelTrainer::Groups {
  std::optional<coll::Communicator> tp, dp, pp, embed;
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

  model_ = make_compute(s_, stage_shard(s_, coord_), rows_per_micro_, live_);
  const double mb = s_.parallel.bucket_mb;  // 0 = one bucket (GradSync's 0)
  const size_t bucket = mb > 0 ? std::max<size_t>(1, size_t(mb * 1048576.0 / sizeof(float))) : 0;
  coll::CollParams params;
  params.servers = s_.parallel.servers;
  params.rounds = s_.parallel.rounds;
  sync_ = std::make_unique<GradSync>(model_->num_params(), bucket, &*g_->dp, s_.parallel.zero1,
                                     s_.parallel.dp_algo, s_.parallel.codec, params);
  pieces_ = sync_->update_pieces(model_->segments());
  norm_ranges_ = sync_->owned_blocks(owned_ranges(model_->runs()));
  model_->init_moments(sync_->state_size());
  const double efficiency = s_.parallel.device_efficiency > 0 ? s_.parallel.device_efficiency : 1.0;
  const double device_rate = s_.parallel.device_gflops * 1e9 * efficiency;
  timeline_ = std::make_unique<Timeline>(world, [this] { return model_->flops(); }, device_rate,
                                         s_.parallel.device_memory_gbs * 1e9);
  tp_ = std::make_unique<TpAllreduce>(*g_->tp, *timeline_);
  inputs_.resize(size_t(rows_per_dp_) * s_.seq_len);
  targets_.resize(inputs_.size());
  grad_send_.assign(size_t(live_), std::vector<float>(size_t(rows_per_micro_) * s_.seq_len * s_.model.n_embd));
  act_sends_.resize(size_t(live_));
  grad_sends_.resize(size_t(live_));
  summary_.config_yaml = config_yaml_;
  summary_.num_params = int64_t(num_parameters(s_.model));
  summary_.flops_per_token = flops_per_token(s_.model, s_.seq_len);
  set_mfu_peak();
  summary_.layout = "dp=" + std::to_string(layout_.dp) + " pp=" + std::to_string(layout_.pp) +
                    " tp=" + std::to_string(layout_.tp) + " microbatches=" + std::to_string(s_.parallel.microbatches) +
                    " schedule=" + s_.parallel.schedule + (s_.parallel.zero1 ? " zero1" : "") +
                    (s_.parallel.vocab_parallel ? " vocab_parallel" : "");
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
  if (!model.shard().first) pp_recv(bytes_of(model.input(slot), btc), pp.rank() - 1, 2 * m);
  timeline_->set_phase(Phase::kForward);
  const size_t offset = size_t(m) * rows_per_micro_ * s_.seq_len;
  const float loss = model.forward(slot, inputs + offset, targets + offset, *tp_);
  timeline_->set_phase(Phase::kHarness);
  if (model.shard().last) loss_sum += loss;
  else
    timeline_->post(Traffic::kPp, [&] {
      act_sends_[size_t(slot)] = pp.isend(pp.rank() + 1, bytes_of(model.output(slot), btc), 2 * m);
    });
}

void ParallelTrainer::backward_micro(int m, bool last) {
  StageCompute& model = *model_;
  coll::Communicator& pp = *g_->pp;
  const int slot = m % live_;
  const size_t btc = size_t(rows_per_micro_) * s_.seq_len * s_.model.n_embd;
  if (!model.shard().last) pp_recv(bytes_of(model.dresidual(), btc), pp.rank() + 1, 2 * m + 1);
  timeline_->set_phase(Phase::kBackward);
  const float scale = 1.0f / float(layout_.dp * s_.parallel.microbatches);
  // The DP sync fires on the last micro-batch, bucket by bucket as the backward finishes them.
  auto ready = [&](size_t lo) {
    if (last) sync_->ready(lo, model.grads(), [this](const std::function<void()>& fn) { launch(fn); });
  };
  model.backward(slot, scale, *tp_, ready);
  timeline_->set_phase(Phase::kHarness);
  if (model.shard().first) return;
  std::vector<float>& out = grad_send_[size_t(slot)];
  if (grad_sends_[size_t(slot)].pending()) timeline_->post(Traffic::kPp, [&] { pp.wait(grad_sends_[size_t(slot)]); });
  std::copy_n(model.dresidual(), out.size(), out.begin());
  timeline_->post(Traffic::kPp, [&] {
    grad_sends_[size_t(slot)] = pp.isend(pp.rank() - 1, bytes_of(out.data(), out.size()), 2 * m + 1);
  });
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
  sync_->ready(0, model_->grads(), [this](const std::function<void()>& fn) { launch(fn); });
  timeline_->join();
}

// The scalars cross the network as floats, as they always have, so every layout's numbers
// stay what they were; a world of one sends nothing and keeps its sums in double, the
// numbers a single rank has always printed. Returns the time compute waited.
double ParallelTrainer::sum_over_world(std::span<double> values) {
  if (world_.size() == 1) return 0;
  std::vector<float> wire(values.begin(), values.end());
  // A few floats: a binomial tree, 2 floor(log2 W) latencies where a ring takes 2 (W - 1).
  const double wait = timeline_->blocking(Traffic::kOther, [&] { coll::tree_allreduce(world_, std::span<float>(wire)); });
  std::copy(wire.begin(), wire.end(), values.begin());
  return wait;
}

RankStepRecord ParallelTrainer::train_step(StepRecord& r) {
  Timeline& tl = *timeline_;
  tl.start_step(world_.rank(), step_);
  train_split_.batch(s_.seed, uint64_t(step_), s_.batch_size, s_.seq_len, coord_.dp, layout_.dp, inputs_.data(),
                     targets_.data());
  model_->zero_grad();
  sync_->begin_step();
  float loss_sum = 0;
  const int M = s_.parallel.microbatches;
  for (const Action& a : pipeline_schedule(schedule_, coord_.pp, layout_.pp, M)) {
    if (a.pass == Pass::kForward) forward_micro(a.microbatch, inputs_.data(), targets_.data(), loss_sum);
    else backward_micro(a.microbatch, a.microbatch == M - 1);
  }
  finish_backward();

  // The global grad norm and the loss: each element counted once (its owner, its DP block).
  const bool reports_loss = model_->shard().last && coord_.tp == 0;
  double norm_loss[2] = {model_->sum_of_squares(norm_ranges_), reports_loss ? loss_sum / float(layout_.dp * M) : 0.0f};
  tl.record().other_comm += sum_over_world(norm_loss);
  r.step = step_;
  r.loss = norm_loss[1];
  r.grad_norm = std::sqrt(norm_loss[0]);
  r.lr = learning_rate(s_.optim, int(step_), s_.steps);

  tl.set_phase(Phase::kOptimizer);
  model_->adamw(pieces_, s_.optim, r.lr, step_ + 1, clip_scale(r.grad_norm, s_.optim.grad_clip));
  for (const UpdatePiece& p : pieces_) tl.charge_memory(double(p.size) * kAdamBytesPerParam);
  if (s_.parallel.zero1) {
    const double wait = tl.blocking(Traffic::kDp, [&] { sync_->allgather_params(model_->params()); });
    tl.record().dp_total += wait;
    tl.record().dp_exposed += wait;
  }
  ++step_;
  const RankStepRecord& t = tl.finish_step();
  const double tokens = double(s_.batch_size) * s_.seq_len;
  r.time_ms = t.step_time * 1e3;
  r.tokens_per_s = t.step_time > 0 ? tokens / t.step_time : 0;
  r.gflops = t.step_time > 0 ? summary_.flops_per_token * tokens / t.step_time / 1e9 : 0;
  return t;
}

// ------------------------------------------------------------------ the loop

std::string ParallelTrainer::step_line(const StepRecord& r, const RankStepRecord& t) const {
  const double comm = t.tp_comm + t.pp_comm + t.dp_total + t.other_comm;
  const double exposed = t.tp_comm + t.pp_comm + t.dp_exposed + t.other_comm;
  const double peak = summary_.mfu_peak_gflops;
  char mfu[32] = "n/a";
  if (peak > 0) std::snprintf(mfu, sizeof mfu, "%.1f%%", 100.0 * r.gflops / (peak * layout_.world()));
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "step %5lld/%d | loss %.4f | norm %.4f | lr %.2e | %.1f ms | %.0f tok/s | %.1f GFLOP/s | %s MFU | "
                "comm %.1f%% | exposed comm %.2f ms | bubble %.2f ms",
                static_cast<long long>(r.step + 1), s_.steps, r.loss, r.grad_norm, r.lr, r.time_ms, r.tokens_per_s,
                r.gflops, mfu, t.step_time > 0 ? 100.0 * comm / t.step_time : 0.0, exposed * 1e3, t.bubble * 1e3);
  return buf;
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
         << ", dataset " << s_.data_path << " (" << train_split_.size() << " train / " << val_split_.size()
         << " val tokens), MFU peak " << summary_.mfu_peak_gflops << " GFLOP/s per rank (" << summary_.mfu_peak_source
         << ")\n";
  if (results_path_.empty()) results_path_ = chosen_results_path();  // prepare_outputs() was not called
  std::vector<RankStepRecord> mine;
  while (step_ < s_.steps) {
    StepRecord r{};
    mine.push_back(train_step(r));
    summary_.steps.push_back(r);
    if (root && (step_ % s_.log_every == 0 || step_ == s_.steps)) log_ << step_line(r, mine.back()) << "\n";
    if (s_.val_every > 0 && (step_ % s_.val_every == 0 || step_ == s_.steps)) {
      summary_.val.push_back({step_, validate()});
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
  if (root) {
    log_ << rank_table(summary_.rank_steps);
    write_results(stopped_by_ ? std::string("stopped by ") + signal_name(stopped_by_) : "complete");
    log_ << "results " << results_path_ << "\n";
    if (stopped_by_)
      log_ << "stopped by " << signal_name(stopped_by_) << " after step " << step_ << "/" << s_.steps
           << ": checkpoint " << stop_checkpoint_ << ", results " << results_path_ << "; continue with --resume "
           << stop_checkpoint_ << " (exit code " << kStoppedExitCode << ")" << std::endl;
  }
  return summary_;
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
  write_train_results(results_path_, summary_);
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
  const size_t total = num_parameters(s_.model);
  const bool root = world_.rank() == 0;
  if (coord_.dp == 0 && !root)
    for (const std::vector<float>* p : {&local_p, &local_m, &local_v})
      world_.send(0, bytes_of(p->data(), p->size()), kGatherTag);
  if (!root) return;
  for (auto* out : {params, m, v}) out->assign(total, 0.0f);
  for (int pp = 0; pp < layout_.pp; ++pp)
    for (int tp = 0; tp < layout_.tp; ++tp) {
      const Coord c{0, pp, tp};
      const StageShard shard = stage_shard(s_, c);
      const int src = placement_.ranks[size_t(grid_rank(layout_, c))];
      std::vector<float> bufs[3];
      for (int k = 0; k < 3; ++k) {
        if (src == 0) {
          bufs[k] = k == 0 ? local_p : (k == 1 ? local_m : local_v);
        } else {
          bufs[k].resize(StageModel::shard_size(s_.model, shard));
          world_.recv(src, bytes_of(bufs[k].data(), bufs[k].size()), kGatherTag);
        }
      }
      std::vector<float>* outs[3] = {params, m, v};
      // Rank 0's own buffer in its compute's layout (a device stage's is GPT's); the others' are StageModel's.
      const std::vector<ShardRun> runs = src == 0 ? model_->runs() : StageModel::shard_runs(s_.model, shard);
      for (const ShardRun& r : runs)
        if (r.owned)
          for (int k = 0; k < 3; ++k)
            std::copy_n(bufs[k].begin() + ptrdiff_t(r.local), r.len, outs[k]->begin() + ptrdiff_t(r.global));
    }
}

std::vector<float> ParallelTrainer::gather_params() {
  std::vector<float> p, m, v;
  gather_state(&p, &m, &v);
  return p;
}

void ParallelTrainer::save(const std::string& path) {
  CheckpointState ck;
  gather_state(&ck.params, &ck.adam_m, &ck.adam_v);
  if (world_.rank() != 0) return;
  ck.model = s_.model;
  ck.step = step_;
  ck.seed = s_.seed;
  ck.data_cursor = uint64_t(step_);
  ck.config_yaml = config_yaml_;
  save_checkpoint(path, ck);
}

void ParallelTrainer::resume(const std::string& path) {
  CheckpointState ck = load_checkpoint(path);
  const GPTConfig& a = ck.model;
  const GPTConfig& b = s_.model;
  if (a != b)
    throw UsageError(path + ": checkpoint model shape differs from the config's model.* keys");
  if (ck.seed != s_.seed)
    throw UsageError(path + ": checkpoint seed " + std::to_string(ck.seed) + " differs from train.seed = " +
                     std::to_string(s_.seed) + "; the data order would not continue");
  std::vector<float> p(model_->num_params()), m(p.size()), v(p.size());
  for (const ShardRun& r : model_->runs()) {
    std::copy_n(ck.params.begin() + ptrdiff_t(r.global), r.len, p.begin() + ptrdiff_t(r.local));
    std::copy_n(ck.adam_m.begin() + ptrdiff_t(r.global), r.len, m.begin() + ptrdiff_t(r.local));
    std::copy_n(ck.adam_v.begin() + ptrdiff_t(r.global), r.len, v.begin() + ptrdiff_t(r.local));
  }
  model_->set_state(p, sync_->shard_state(m), sync_->shard_state(v));
  step_ = ck.step;
  if (world_.rank() == 0) log_ << "resumed from " << path << " at step " << step_ << "\n";
}

}  // namespace dtb::par
