// dtbench prepare: makes a token dataset, from text files (byte-level) or uniform random
// tokens. The cxxopts table below is both the parser and the --help text.
#include <cxxopts.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "data/prepare.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

const char* const kDefaultCorpusOut = "data/fortunes.h5";
const char* const kDefaultTextOut = "data/text.h5";  // named files never overwrite the default corpus
const char* const kSyntheticOnly[] = {"vocab", "tokens", "seed"};

cxxopts::Options prepare_options(const std::string& program) {
  cxxopts::Options options(program,
                           "Makes a token dataset (HDF5) for dtbench train. Text FILES are read byte by byte "
                           "(vocabulary 256) and concatenated;\nwith no FILES, every text file of Debian's "
                           "fortunes package (" + std::string(kDefaultCorpusDir) + ") is used.");
  options.positional_help("[FILES...]");
  options.add_options()
      ("o,out", "output file (default: data/fortunes.h5 for the default corpus, data/text.h5 for FILES, "
               "data/synthetic-v<VOCAB>.h5 with --synthetic)",
       cxxopts::value<std::string>(), "FILE")
      ("val-fraction", "share of the tokens, taken from the end, kept for validation; in (0, 0.5]",
       cxxopts::value<double>()->default_value("0.05"), "F")
      ("synthetic", "make uniform random tokens instead of reading text")
      ("vocab", "vocabulary of --synthetic tokens, in [2, 2^32]", cxxopts::value<int64_t>()->default_value("50257"), "V")
      ("tokens", "number of --synthetic tokens, train and val together",
       cxxopts::value<uint64_t>()->default_value("1000000"), "N")
      ("seed", "seed of the --synthetic tokens", cxxopts::value<uint64_t>()->default_value("1"), "S")
      ("h,help", "print this help");
  // The positional FILES live in their own group so that --help lists them only in the usage line.
  options.add_options("positional")("files", "text files", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"files"});
  return options;
}

std::vector<std::string> text_files(const cxxopts::ParseResult& args) {
  return args.count("files") ? args["files"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// Options that belong to the other mode are refused rather than silently ignored.
void check_mode_options(const cxxopts::ParseResult& args, const std::string& program) {
  const bool synthetic = args.count("synthetic") > 0;
  if (synthetic && !text_files(args).empty()) {
    throw UsageError(program + ": --synthetic reads no text files; drop the FILES or --synthetic");
  }
  for (const char* option : kSyntheticOnly) {
    if (!synthetic && args.count(option)) {
      throw UsageError(program + ": --" + option + " applies only with --synthetic");
    }
  }
}

PreparedDataset run_synthetic(const cxxopts::ParseResult& args) {
  const auto vocab = args["vocab"].as<int64_t>();
  const std::string out =
      args.count("out") ? args["out"].as<std::string>() : "data/synthetic-v" + std::to_string(vocab) + ".h5";
  return prepare_synthetic(out, vocab, args["tokens"].as<uint64_t>(), args["seed"].as<uint64_t>(),
                           args["val-fraction"].as<double>());
}

PreparedDataset run_text(const cxxopts::ParseResult& args) {
  const std::vector<std::string> files = text_files(args);
  const std::string out = args.count("out")   ? args["out"].as<std::string>()
                          : files.empty()     ? kDefaultCorpusOut
                                              : kDefaultTextOut;
  const double val_fraction = args["val-fraction"].as<double>();
  return files.empty() ? prepare_default_corpus(out, val_fraction) : prepare_text(files, out, val_fraction);
}

void print_summary(const PreparedDataset& made) {
  std::cout << "wrote " << made.path << "\n"
            << "  source     " << made.source << "\n"
            << "  tokenizer  " << made.tokenizer << ", vocab " << made.vocab_size << ", stored as " << made.dtype << "\n"
            << "  train      " << made.train_tokens << " tokens\n"
            << "  val        " << made.val_tokens << " tokens\n";
}

}  // namespace

int cmd_prepare(int argc, char** argv) {
  const std::string program = argc > 0 ? argv[0] : "dtbench prepare";
  cxxopts::Options options = prepare_options(program);
  const cxxopts::ParseResult args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help({""});
    return 0;
  }
  check_mode_options(args, program);
  print_summary(args.count("synthetic") ? run_synthetic(args) : run_text(args));
  return 0;
}

}  // namespace dtb
