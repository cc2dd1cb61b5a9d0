#pragma once
// Between librunnel's public values (include/runnel/types.h, owned strings)
// and the wire's (proto/wire.h, views into frames). Internal to the library.

#include <vector>

#include "proto/wire.h"
#include "runnel/types.h"

namespace runnel::client {

// Checks a batch against its producer's checksum and appends its records
// with seq_num >= from_seq, with their effective timestamps
// (storage/FORMAT.md, "Payload"). kCorrupt if the bytes are not what the
// checksum and record encoding say (then `out` is left as it was).
Status append_records(const wire::Batch& batch, uint64_t from_seq, std::vector<Record>* out);

}  // namespace runnel::client
