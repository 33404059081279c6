// dtbench train: train a GPT model from YAML configs and --set overrides, on the ranks its
// launcher started (mpirun, srun), or on one rank without one: MPI then starts as a
// singleton, and the world of one runs the same trainer (trainer/parallel/) as N ranks.
#include <iostream>
#include <sstream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "communicator.hpp"
#include "parallel/parallel_trainer.hpp"
#include "verify/recorder.hpp"
#include "train/run_stopped.hpp"

namespace dtb {
namespace {

int run(const Config& config, const cxxopts::ParseResult& args, const std::string& command_line, int* argc,
        char*** argv) {
  const TrainSettings s = train_settings(config);  // every config mistake named before MPI starts
  coll::MpiSession mpi(argc, argv, /*thread_multiple=*/s.parallel.clock == "wall");  // the DP comm thread
  const int world = coll::MpiSession::world_size();
  coll::Communicator comm(MPI_COMM_WORLD, par::run_profile(s, world),
                          s.parallel.clock == "wall" ? netem::ClockKind::kWall : netem::ClockKind::kVirtual);
  std::ostringstream quiet;  // only rank 0 talks
  std::ostream& log = comm.rank() == 0 ? std::cout : quiet;
  log << "# resolved config\n" << config.to_yaml() << std::flush;
  par::ParallelTrainer trainer(config, comm, log);
  if (args.count("resume")) trainer.resume(args["resume"].as<std::string>());
  const auto commitments = verify::attach_recorder(config, trainer);  // verify.segment > 0 only
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
    return run(config_from_args(args, train_schema()), args, command_line, &argc, &argv);
  } catch (const UsageError&) {
    if (coll::MpiSession::launcher_rank() != 0) return 2;  // every rank fails alike; rank 0 says why
    throw;
  } catch (const RunStopped&) {
    if (coll::MpiSession::launcher_rank() != 0) return kRunStoppedExit;  // likewise
    throw;
  }
}

}  // namespace dtb
