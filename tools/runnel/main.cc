// runnel: the command-line client (docs/REFERENCE.md, "Operator interface").
// Manages buckets and streams, appends stdin, reads and follows streams,
// through librunnel's public API only. Exit statuses: tools/runnel/output.h.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <variant>

#include "tools/runnel/args.h"
#include "tools/runnel/commands.h"
#include "tools/runnel/output.h"

int main(int argc, char** argv) {
  using namespace runnel::cli;
  ::signal(SIGPIPE, SIG_IGN);  // A closed stdout is seen as EPIPE: stop quietly.
  static char out_buffer[1 << 16];
  if (::isatty(STDOUT_FILENO) == 0) std::setvbuf(stdout, out_buffer, _IOFBF, sizeof(out_buffer));

  auto parsed = parse_args(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  int code = kExitOther;
  try {
    code = run(std::get<Invocation>(parsed));
  } catch (const std::exception& e) {
    print_error(std::string("unexpected error: ") + e.what());
    code = kExitOther;
  }
  Out::flush();
  if (auto error = Out::write_error()) {
    print_error("cannot write to stdout: " + *error);
    if (code == kExitOk) code = kExitOther;
  }
  return code;
}
