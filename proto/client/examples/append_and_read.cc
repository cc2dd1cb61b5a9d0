// Appends three records to a stream and reads them back, using only the
// installed librunnel. Usage: append_and_read [port] (default 7420).
#include <runnel/blocking_client.h>

#include <cstdio>
#include <cstdlib>

using namespace runnel::client;

int main(int argc, char** argv) {
  BlockingClient client({.port = static_cast<uint16_t>(argc > 1 ? std::atoi(argv[1]) : 7420)});
  auto bucket = client.create_bucket("examples");
  if (!bucket && bucket.status().code() != ErrorCode::kAlreadyExists) return std::puts(bucket.status().to_string().c_str()), 1;
  auto stream = client.create_stream("examples", "greetings");
  if (!stream && stream.status().code() != ErrorCode::kAlreadyExists) return std::puts(stream.status().to_string().c_str()), 1;

  auto ack = client.append("examples", "greetings", {{.body = "hello"}, {.body = "from"}, {.body = "runnel"}});
  if (!ack) return std::puts(ack.status().to_string().c_str()), 1;
  std::printf("appended seq_nums %llu..%llu\n", (unsigned long long)ack->start_seq, (unsigned long long)ack->end_seq - 1);

  auto read = client.read("examples", "greetings", {.start = Start::seq_num(ack->start_seq)});
  if (!read) return std::puts(read.status().to_string().c_str()), 1;
  for (const Record& r : read->records) std::printf("%llu %s\n", (unsigned long long)r.seq_num, r.body.c_str());
  return 0;
}
