#pragma once
// The dtbench subcommands. Each parses its own argv (argv[0] is "dtbench SUB") with a
// cxxopts table that also prints its --help, returns the process exit code, and throws
// dtb::UsageError on bad input (main prints the one line and exits with 2).
namespace dtb {
int cmd_prepare(int argc, char** argv);
int cmd_train(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_coll(int argc, char** argv);  // the only one that starts MPI
int cmd_sim(int argc, char** argv);
int cmd_plan(int argc, char** argv);  // DT-FM's scheduler: a placement file
int cmd_run(int argc, char** argv);     // experiments: launches dtbench train / coll as child processes
int cmd_report(int argc, char** argv);
int cmd_verify(int argc, char** argv);
int cmd_infer(int argc, char** argv);   // generation over PP stages and TP slices (infer/generate.hpp)  // re-executes sampled segments of a committed run (verify/)
}  // namespace dtb
