#pragma once
// What one rank computes, behind one interface: the seam between the training loop
// (parallel_trainer.hpp, the same for 1..N ranks) and the device. A stage compute holds
// the rank's pipeline stage (its layers, TP slices and optional vocabulary slice), runs its
// forward and backward, keeps its gradient buffer, updates the parameters with AdamW
// (moments included) and hands its state to checkpoints. The loop does the rest: data,
// the pipeline schedule, TP/PP/DP communication, the norm, clipping, timing, logs.
//
//   CpuStage      (device.backend = cpu) StageModel, any layout, moments on the host.
//   BackendStage  a Backend (train/backend.hpp) that holds every layer of the model: one
//                 rank, one micro-batch (device.backend = cuda; train_settings() refuses
//                 any other layout). Its buffers live on the device, so it has no host
//                 views (params()/grads() are null): nothing reads them on one rank.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optim/adamw.hpp"
#include "parallel/grad_sync.hpp"  // Range, UpdatePiece
#include "parallel/stage_model.hpp"
#include "train/backend.hpp"
#include "train/train_config.hpp"

namespace dtb::par {

class StageCompute {
 public:
  virtual ~StageCompute() = default;
  // For the run's first log line: "cpu, 2 thread(s) per rank", "cuda fp32, NVIDIA H100 (sm_90)".
  virtual std::string describe() const = 0;

  // The shard and its local buffer, as StageModel defines them (stage_model.hpp).
  virtual const StageShard& shard() const = 0;
  virtual size_t num_params() const = 0;
  virtual const std::vector<ShardRun>& runs() const = 0;
  virtual std::vector<ParamSegment> segments() const = 0;
  virtual size_t wte_size() const = 0;
  virtual double flops() const = 0;  // FLOPs issued so far (the device-model clock)

  // StageModel's forward and backward, with its contracts.
  virtual float* input(int slot) = 0;
  virtual const float* output(int slot) = 0;
  virtual float* dresidual() = 0;
  virtual float forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp) = 0;
  virtual void zero_grad() = 0;
  virtual void backward(int slot, float loss_scale, TpReduce& tp, const std::function<void(size_t)>& ready) = 0;

  // Host views that the DP sync, ZeRO-1's allgather and the tied embedding's sum change in
  // place (null on a device stage, which runs where none of them does).
  virtual float* params() = 0;
  virtual float* grads() = 0;

  // Sum of squares of the gradient elements in RANGES, in their order (the norm's share).
  virtual double sum_of_squares(const std::vector<Range>& ranges) = 0;
  // Zero moments for STATE_SIZE elements (ZeRO-1: this DP rank's blocks only).
  virtual void init_moments(size_t state_size) = 0;
  // One AdamW step of PIECES (T: the 1-based step; GRAD_SCALE: the clipping factor),
  // finished when it returns, so the step time covers it.
  virtual void adamw(const std::vector<UpdatePiece>& pieces, const OptimSettings& o, double lr, int64_t t,
                     double grad_scale) = 0;
  // The moments themselves (state_size each), for strategies that update them their own
  // way (compressed_adam.hpp); null on a device stage.
  virtual float* adam_m() { return nullptr; }
  virtual float* adam_v() { return nullptr; }
  // Copies of the parameters (num_params, local order) and the moments (state_size).
  virtual void get_state(std::vector<float>* params, std::vector<float>* m, std::vector<float>* v) = 0;
  virtual void set_state(const std::vector<float>& params, const std::vector<float>& m,
                         const std::vector<float>& v) = 0;
  // The stage's layer probe (model/stage.hpp; verify/'s traces): the CPU stage only.
  virtual void set_probe(StageModel::Probe probe);
};

// The stage device.backend names, with GPT-2's initial weights from S.seed. ROWS sequences
// per micro-batch, SLOTS micro-batches' activations kept at once (stage_model.hpp).
std::unique_ptr<StageCompute> make_stage_compute(const TrainSettings& s, const StageShard& shard, int rows,
                                                 int slots);

// BACKEND as the stage of a one-rank run: every layer, one micro-batch of S.batch_size rows.
std::unique_ptr<StageCompute> make_backend_stage(std::unique_ptr<Backend> backend, const TrainSettings& s);

}  // namespace dtb::par
