#pragma once
// The training loop, one for any world: DP x PP x TP ranks (grid.hpp), each holding its
// stage's TP slices (stage_compute.hpp: the CPU's StageModel, or a one-rank device backend),
// running a pipeline schedule (schedule.hpp), syncing gradients in DP buckets
// (grad_sync.hpp) and accounting every step's time (timeline.hpp). All communication goes
// through collectives/ and so through netem. A single rank is the world of one
// (dp = pp = tp = 1): the same loop, step line, results file and checkpoints, with nothing
// to send (dtbench train starts MPI as a singleton when no launcher started it).
//
// The same config trains the same model on any layout: train.batch_size is the global
// batch, DP rank d reads rows [d B/DP, (d+1) B/DP) of it (TokenSplit::batch), micro-batch m
// of those is its m-th B/(DP M) rows, and the loss gradient is scaled by 1/(DP M), so the
// loss and the update are those of one rank on the whole batch, up to float rounding.
// Checkpoints are single-rank files (rank 0 gathers): any layout loads any other's.
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "config.hpp"
#include "data/dataset.hpp"
#include "data/epoch_sampler.hpp"
#include "parallel/cocktail.hpp"
#include "parallel/demo.hpp"
#include "parallel/compressed_adam.hpp"
#include "parallel/dp_strategy.hpp"
#include "parallel/grad_sync.hpp"
#include "parallel/grid.hpp"
#include "parallel/pp_compress.hpp"
#include "parallel/schedule.hpp"
#include "parallel/stage_compute.hpp"
#include "parallel/stage_model.hpp"
#include "parallel/step_scalars.hpp"
#include "parallel/timeline.hpp"
#include "privacy/masked_buckets.hpp"
#include "profile.hpp"
#include "train/checkpoint.hpp"
#include "train/results.hpp"
#include "train/outlier.hpp"
#include "train/train_config.hpp"

namespace dtb::par {

// The network profile of a run (net.profile, or unshaped), with the placement's sites.
netem::Profile run_profile(const TrainSettings& s, int world_size);
Placement run_placement(const TrainSettings& s, int world_size);

class ParallelTrainer;

// Observers of a run, called on every rank (verify/: commitments, and its test-only cheats).
class StepHooks {
 public:
  virtual ~StepHooks() = default;
  virtual void before_step(ParallelTrainer&) {}
  // The step's tokens, just read (this DP rank's rows): a cheat may replace them.
  virtual void after_batch(ParallelTrainer&, std::span<int32_t> /*inputs*/, std::span<int32_t> /*targets*/) {}
  virtual void after_step(ParallelTrainer&) {}  // before validation and checkpoints
  virtual void before_results(TrainRunSummary&) {}  // rank 0, before the results file is written
};

class ParallelTrainer {
 public:
  // Builds a rank's stage compute (stage_compute.hpp); tests pass their own.
  using ComputeFactory =
      std::function<std::unique_ptr<StageCompute>(const TrainSettings&, const StageShard&, int rows, int slots)>;

  // Collective over WORLD (its size must be dp x pp x tp). Checks every input first.
  ParallelTrainer(const Config& config, coll::Communicator& world, std::ostream& log,
                  const ComputeFactory& make_compute = make_stage_compute);
  ~ParallelTrainer();

  void resume(const std::string& checkpoint_path);  // every rank reads its slices
  // The same from a state in memory (every rank); SOURCE names it in errors.
  void restore(const CheckpointState& state, const std::string& source = "checkpoint state");
  CheckpointState checkpoint_state();                // collective; complete on rank 0
  void set_hooks(StepHooks* hooks) { hooks_ = hooks; }
  void run_steps(int64_t until);  // train up to step UNTIL: no logs, validation, checkpoints or results
  StageCompute& compute() { return *model_; }
  // Collective, before run() (dtbench train calls it): rank 0 removes temporaries of
  // interrupted writes, refuses an existing results file or checkpoint unless OVERWRITE,
  // and a folder it cannot write (train/outputs.hpp); then every rank throws that
  // UsageError (rank 0's has the message, the others' is empty).
  void prepare_outputs(bool overwrite);
  // The stop signal (train/stop_signal.hpp) the ranks agreed to stop at after a step: run()
  // then wrote a checkpoint and the results so far. 0 = ran to the end.
  int stopped_by() const { return stopped_by_; }
  const TrainRunSummary& run(const std::string& command_line);  // the table is complete on rank 0
  double validate();                                // collective; the same on every rank
  void save(const std::string& path);               // collective; rank 0 writes
  std::vector<float> gather_params();               // collective; GPT's layout on rank 0, else empty
  int64_t step() const { return step_; }
  const Coord& coord() const { return coord_; }
  int world_rank() const { return world_.rank(); }
  const TrainSettings& settings() const { return s_; }

 private:
  class TpAllreduce;
  struct Groups;
  RankStepRecord train_step(StepRecord& r);
  void forward_micro(int m, const int32_t* inputs, const int32_t* targets, float& loss_sum);
  void backward_micro(int m, bool last);
  void finish_backward();
  void wait_sends();
  void pp_recv(std::span<std::byte> data, int src, int tag);
  void split_pp_wait(double wait, double transfer);
  void launch(const std::function<void()>& fn) { timeline_->launch(fn); }
  void gather_state(std::vector<float>* params, std::vector<float>* m, std::vector<float>* v);
  std::vector<std::vector<float>> gather_worker(const std::vector<const std::vector<float>*>& local, int worker);
  std::vector<float> localize(const std::vector<float>& global) const;
  // DiLoCo's hooks (dp_strategy.hpp): the fragments' syncs after a step, checkpoint state.
  void diloco_step();
  void save_strategy(CheckpointState& ck);
  void resume_strategy(const CheckpointState& ck, const std::string& path);
  // CocktailSGD's and DeMo's hooks (cocktail.hpp, demo.hpp; parallel_trainer_compress.cpp).
  void cocktail_land();
  void cocktail_take();
  void demo_step(float lr, float clip);
  void save_compressed(CheckpointState& ck);
  void resume_compressed(const CheckpointState& ck, const std::string& path);
  int grad_replicas() const { return s_.strategy.local() ? 1 : layout_.dp; }  // replicas a gradient is averaged over
  std::vector<RankStepRecord> gather_records(const std::vector<RankStepRecord>& mine);
  double sum_over_world(std::span<double> values);
  double sum_over(coll::Communicator& comm, std::span<double> values);  // over COMM's ranks
  NormInputs norm_inputs() const;       // what the norm's group depends on (step_scalars.hpp)
  double loss_off_clock(float mine);    // collective: the world's loss, outside netem
  std::string step_line(const StepRecord& r, const RankStepRecord& t) const;
  size_t first_nonfinite_global(const float* buf);
  [[noreturn]] void stop_non_finite(const StepRecord& r);
  std::string chosen_results_path() const;  // train.results or a new default name
  bool stop_agreed();                          // collective: any rank got a stop signal
  void write_results(const std::string& status);  // rank 0; status: running, complete, stopped ...
  void stop_with_checkpoint();                 // after stop_agreed(): the step's checkpoint
  void set_mfu_peak();
  std::string dp_bucket_text() const;  // for the start line

  std::string config_yaml_;
  TrainSettings s_;
  std::ostream& log_;
  coll::Communicator& world_;
  Layout layout_;
  Placement placement_;
  Coord coord_;
  ScheduleKind schedule_;
  std::unique_ptr<Groups> g_;
  TokenSplit train_split_, val_split_;
  int rows_per_dp_, rows_per_micro_, live_;
  std::unique_ptr<StageCompute> model_;
  std::unique_ptr<GradSync> sync_;
  std::unique_ptr<DiLoCo> diloco_;  // strategy.name = diloco
  std::unique_ptr<CocktailSGD> cocktail_;  // strategy.name = cocktail
  std::unique_ptr<DeMo> demo_;             // strategy.name = demo
  std::unique_ptr<Timeline> timeline_;
  std::unique_ptr<TpAllreduce> tp_;
  std::vector<UpdatePiece> pieces_;
  std::vector<Range> norm_ranges_;  // the gradient elements whose squares this rank adds to the norm
  std::vector<int32_t> inputs_, targets_;
  std::vector<std::vector<float>> grad_send_;  // per slot: the gradient sent to the previous stage
  std::vector<coll::Request> act_sends_, grad_sends_;  // per slot
  int64_t step_ = 0;
  TrainRunSummary summary_;
  // data.sampler = epoch (null: windows) and its rows' sample ids; parallel.pp_compress
  // (null: none) on the stage boundaries' sends and receives.
  std::unique_ptr<EpochSampler> sampler_;
  std::vector<uint32_t> sample_ids_;
  std::unique_ptr<PpCompressor> pp_codec_;
  void setup_data_and_pp();
  std::string pp_buffer_report();
  StepHooks* hooks_ = nullptr;
  // privacy.* (issue 16; parallel_trainer_privacy.cpp): DP-SGD's per-sample clip factors
  // and noise, secure aggregation of the DP buckets, the accountant's report.
  std::vector<float> micro_scale_;   // DP-SGD: each micro-batch's (one sample's) loss scale
  std::vector<Range> sample_ranges_;  // every element this rank counts once (a sample's norm)
  std::unique_ptr<privacy::SecureAggregator> secagg_;
  std::unique_ptr<privacy::MaskedBuckets> masked_;
  double keyx_seconds_ = 0;
  int64_t keyx_bytes_ = 0;
  coll::Communicator* dp_comm_ = nullptr;  // the DP group (the key exchange's)
  std::optional<coll::Communicator> replica_comm_;  // DP-SGD: this replica's TP x PP ranks (a sample's norm)
  void setup_privacy(coll::Communicator& dp);
  void begin_privacy_step();
  void dp_sgd_clip_factors();
  void dp_sgd_noise();
  void secure_agg_keys();
  void check_secure_sum();
  std::string privacy_report();  // collective; rank 0's line (the accountant's epsilon)
  std::function<void(h5::File&)> privacy_writer_;  // the results' /privacy group (set by privacy_report)
  void save_data_and_pp(CheckpointState& ck);
  void resume_data_and_pp(const CheckpointState& ck, const std::string& path);
  // 1-bit Adam / QuantizedAdam (compressed_adam.hpp; parallel_trainer_cadam.cpp): after the
  // warm-up the gradient buckets stay local (sync_ swapped with local_sync_) and the
  // optimizer step sends the compressed momentum.
  std::unique_ptr<CompressedAdam> cadam_;
  std::unique_ptr<GradSync> local_sync_;
  std::vector<Range> local_norm_ranges_;  // its norm_ranges_
  bool compressing_ = false;
  void setup_compressed_adam(coll::Communicator& dp, size_t bucket, const std::vector<Range>& owned);
  void set_compressing(bool on);
  void compressed_adam_step(const StepRecord& r);
  void save_compressed_adam(CheckpointState& ck);
  void resume_compressed_adam(const CheckpointState& ck, const std::string& path);
  std::string results_path_;  // fixed before step 1 (train.results or the default)
  std::string stop_checkpoint_;  // where stop_with_checkpoint() wrote
  int stopped_by_ = 0;
  // optim.outlier_z (train/outlier.hpp): the detector, the last step's score, the skips;
  // faults.grad_spike_step's injected spike.
  bool skip_outlier(const StepRecord& r);
  void spike_gradients();
  std::string outlier_text() const;
  OutlierDetector outlier_;
  double last_z_ = 0;
  bool last_skipped_ = false;
};

}  // namespace dtb::par
