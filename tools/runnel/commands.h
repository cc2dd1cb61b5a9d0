#pragma once
// The runnel CLI's commands, each on a BlockingClient connected to
// --server. Every function returns the process's exit status, having
// printed its output on stdout and any error as one line on stderr.

#include "runnel/blocking_client.h"
#include "runnel/types.h"
#include "tools/runnel/args.h"

namespace runnel::cli {

// Runs the invocation against the server it names.
int run(const Invocation& inv);

// bucket *, stream *, tail (commands.cc).
int run_admin(client::BlockingClient& client, const Invocation& inv);
// append (append.cc): stdin in pipelined batches.
int run_append(client::BlockingClient& client, const Invocation& inv);
// read (read.cc): a range, or --follow.
int run_read(client::BlockingClient& client, const Invocation& inv);

// Prints the error (naming the server where it could not be reached) and
// returns its exit status.
int fail(const Invocation& inv, const client::Status& status);

}  // namespace runnel::cli
