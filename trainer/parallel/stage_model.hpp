#pragma once
// One rank's part of the GPT under tensor and pipeline parallelism: the model's one
// orchestration, model/stage.hpp, in float (the 3D trainer's name for it).
#include "model/stage.hpp"

namespace dtb::par {

using StageModel = TransformerStage<float>;
using dtb::ShardRun;
using dtb::StageShard;
using dtb::TpReduce;
using dtb::vocab_slice;

}  // namespace dtb::par
