// Fuzz target: what librunnel does with the bytes of a READ answer or a
// SUBSCRIPTION_DATA push from a server — decode the answer, then turn every
// batch into records (checksum check, record decoding, effective
// timestamps). The first input byte chooses whether each batch's checksum
// is made to match, so the record decoder behind it is reached too. Nothing
// may crash, hang or allocate without bound, and a batch that fails adds no
// records.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/client/convert.h"
#include "proto/records.h"
#include "proto/wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool fix_checksums = (data[0] & 1) != 0;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  runnel::wire::ReadAnswer answer;
  if (!runnel::wire::decode_body(body, &answer)) return 0;
  std::vector<runnel::client::Record> records;
  for (runnel::wire::Batch batch : answer.batches) {
    if (fix_checksums) batch.payload_checksum = runnel::payload_checksum(batch.payload);
    const size_t before = records.size();
    const runnel::client::Status st = runnel::client::append_records(batch, 0, &records);
    if (!st.ok() && records.size() != before) std::abort();
    if (st.ok() && records.size() != before + batch.record_count) std::abort();
  }
  return 0;
}
