// dtbench bench: placeholder until the bench module lands (wired by the lead).
#include "cli/commands.hpp"
#include "usage_error.hpp"
namespace dtb {
int cmd_bench(int, char**) { throw UsageError("dtbench bench: not built yet"); }
}  // namespace dtb
