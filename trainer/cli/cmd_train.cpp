// dtbench train: train a GPT model from YAML configs and --set overrides. On one rank
// without a launcher: the single-rank Trainer. Under mpirun/srun, or when parallel.*
// asks for more than one rank: MPI and the 3D-parallel trainer (trainer/parallel/).
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "communicator.hpp"
#include "parallel/parallel_trainer.hpp"
#include "train/train.hpp"

namespace dtb {
namespace {

// The world size the launcher announces (0: not launched by one), readable before MPI.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const char* value = std::getenv(name)) return std::atoi(value);
  return 0;
}

// The CUDA backend runs the single-rank Trainer on one GPU; the 3D-parallel trainer has no
// GPU path yet (its DP sync would go through collectives/nccl). Checked on the config alone,
// before MPI starts and before train_settings() looks for a GPU, so the answer is the same
// on every machine.
void refuse_cuda_in_parallel(const Config& c) {
  if (c.get_string("device.backend") != "cuda") return;
  const int64_t world = c.get_int("parallel.dp") * c.get_int("parallel.pp") * c.get_int("parallel.tp");
  const int launched = launcher_world_size();
  if (world == 1 && launched == 0) return;
  c.fail_constraint("device.backend",
                    "cuda trains on one rank only, without mpirun or srun (here parallel.dp x parallel.pp x "
                    "parallel.tp = " + std::to_string(world) +
                        (launched ? ", and a launcher started " + std::to_string(launched) + " rank(s)" : std::string()) +
                        "); the 3D-parallel trainer has no CUDA path yet: use device.backend = cpu");
}

int run_parallel(const Config& config, const cxxopts::ParseResult& args, const std::string& command_line,
                 int* argc, char*** argv) {
  const TrainSettings s = train_settings(config);
  const int launched = launcher_world_size();
  if (launched != s.parallel.world())  // checked before MPI starts: nothing is half done
    throw UsageError("parallel.dp x parallel.pp x parallel.tp = " + std::to_string(s.parallel.world()) +
                     " ranks, but the run has " + std::to_string(std::max(launched, 1)) +
                     (launched ? " (mpirun -np)" : " (launch it with mpirun -np " + std::to_string(s.parallel.world()) + ")"));
  coll::MpiSession mpi(argc, argv, /*thread_multiple=*/s.parallel.clock == "wall");  // the DP comm thread
  const int world = coll::MpiSession::world_size();
  coll::Communicator comm(MPI_COMM_WORLD, par::run_profile(s, world), 
                          s.parallel.clock == "wall" ? netem::ClockKind::kWall : netem::ClockKind::kVirtual);
  std::ostringstream quiet;  // only rank 0 talks
  std::ostream& log = comm.rank() == 0 ? std::cout : quiet;
  log << "# resolved config\n" << config.to_yaml() << std::flush;
  par::ParallelTrainer trainer(config, comm, log);
  if (args.count("resume")) trainer.resume(args["resume"].as<std::string>());
  trainer.run(command_line);
  return 0;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  cxxopts::Options options(argv[0], "Train a GPT model on one rank, or on DP x PP x TP ranks under mpirun.");
  add_config_options(options);
  options.add_options()
      ("resume", "continue from this checkpoint (of any layout)", cxxopts::value<std::string>(), "CKPT")
      ("h,help", "print this help");
  try {
    auto args = parse_or_usage(options, argc, argv);
    if (args.count("help")) {
      if (coll::MpiSession::launcher_rank() == 0) std::cout << help_with_keys(options, train_schema());
      return 0;
    }
    if (!args.unmatched().empty())
      throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] +
                       "'; see " + argv[0] + " --help");
    Config config = config_from_args(args, train_schema());
    refuse_cuda_in_parallel(config);
    if (launcher_world_size() > 0 || train_settings(config).parallel.world() > 1)
      return run_parallel(config, args, command_line, &argc, &argv);
    std::cout << "# resolved config\n" << config.to_yaml() << std::flush;
    Trainer trainer(config, std::cout);
    if (args.count("resume")) trainer.resume(args["resume"].as<std::string>());
    trainer.run(command_line);
    return 0;
  } catch (const UsageError&) {
    if (coll::MpiSession::launcher_rank() != 0) return 2;  // every rank fails alike; rank 0 says why
    throw;
  }
}

}  // namespace dtb
