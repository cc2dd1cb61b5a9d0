#include "storage/segment_summary.h"

#include "core/bytes.h"
#include "storage/batch.h"

namespace runnel {
namespace {

constexpr uint32_t kSummaryMagic = 0x35534E52;  // "RNS5" (RNS4 had no producers: such a segment is rescanned)

}  // namespace

std::string encode_segment_summary(uint64_t segment_id, const SegmentSummary& summary) {
  std::string out;
  put_le<uint32_t>(&out, kSummaryMagic);
  put_le<uint64_t>(&out, segment_id);
  put_le<uint64_t>(&out, summary.batches);
  put_le<uint64_t>(&out, summary.durable_end);
  put_le<uint64_t>(&out, summary.tails.size());
  for (const auto& [stream, tail] : summary.tails) {
    put_le(&out, stream);
    put_le(&out, tail.next_seq);
    put_le(&out, tail.last_timestamp);
    put_le(&out, tail.bytes_total);
  }
  put_le<uint64_t>(&out, summary.entries.size());
  for (const auto& e : summary.entries) {
    put_le(&out, e.stream_id);
    put_le(&out, e.base_seq);
    put_le(&out, e.offset);
    put_le(&out, e.first_timestamp);
    put_le(&out, e.bytes_before);
  }
  put_le<uint64_t>(&out, summary.controls.size());
  for (const std::string& c : summary.controls) {
    put_le<uint32_t>(&out, static_cast<uint32_t>(c.size()));
    out.append(c);
  }
  put_le<uint64_t>(&out, summary.holes.size());
  for (const auto& [start, end] : summary.holes) {
    put_le(&out, start);
    put_le(&out, end);
  }
  put_le<uint64_t>(&out, summary.relocations.size());
  for (const Relocation& r : summary.relocations) {
    put_le(&out, r.source);
    put_le<uint64_t>(&out, r.streams.size());
    for (const Relocation::Stream& st : r.streams) {
      put_le(&out, st.stream_id);
      put_le(&out, st.end_seq);
      put_le(&out, st.last_timestamp);
      put_le(&out, st.bytes_end);
      put_le<uint64_t>(&out, st.entries.size());
      for (const Relocation::Entry& e : st.entries) {
        put_le(&out, e.base_seq);
        put_le(&out, e.offset);
        put_le(&out, e.first_timestamp);
        put_le(&out, e.bytes_before);
      }
    }
  }
  put_le<uint64_t>(&out, summary.producers.size());
  for (const auto& [key, window] : summary.producers) {
    put_le(&out, key.first);
    put_le(&out, key.second);
    put_le<uint64_t>(&out, window.size());
    for (const SegmentSummary::ProducerAppend& p : window) {
      put_le(&out, p.producer_seq);
      put_le(&out, p.start_seq);
      put_le(&out, p.end_seq);
      put_le(&out, p.first_timestamp);
      put_le(&out, p.last_timestamp);
    }
  }
  put_le<uint64_t>(&out, payload_checksum(out));
  return out;
}

bool decode_segment_summary(std::string_view bytes, uint64_t segment_id, SegmentSummary* summary) {
  if (bytes.size() < 8) return false;
  const auto checksum = load_le<uint64_t>(bytes.data() + bytes.size() - 8);
  std::string_view in = bytes.substr(0, bytes.size() - 8);
  if (payload_checksum(in) != checksum) return false;
  uint32_t magic;
  uint64_t id, count;
  if (!take_le(&in, &magic) || magic != kSummaryMagic || !take_le(&in, &id) || id != segment_id) return false;
  if (!take_le(&in, &summary->batches) || !take_le(&in, &summary->durable_end) || !take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t stream;
    SegmentSummary::Tail tail;
    if (!take_le(&in, &stream) || !take_le(&in, &tail.next_seq) || !take_le(&in, &tail.last_timestamp) ||
        !take_le(&in, &tail.bytes_total)) {
      return false;
    }
    summary->tails[stream] = tail;
  }
  if (!take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    SegmentSummary::Entry e;
    if (!take_le(&in, &e.stream_id) || !take_le(&in, &e.base_seq) || !take_le(&in, &e.offset) ||
        !take_le(&in, &e.first_timestamp) || !take_le(&in, &e.bytes_before)) {
      return false;
    }
    summary->entries.push_back(e);
  }
  if (!take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint32_t len;
    if (!take_le(&in, &len) || in.size() < len) return false;
    summary->controls.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t start, end;
    if (!take_le(&in, &start) || !take_le(&in, &end)) return false;
    summary->holes.emplace_back(start, end);
  }
  if (!take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    Relocation r;
    uint64_t streams;
    if (!take_le(&in, &r.source) || !take_le(&in, &streams)) return false;
    for (uint64_t k = 0; k < streams; k++) {
      Relocation::Stream st;
      uint64_t entries;
      if (!take_le(&in, &st.stream_id) || !take_le(&in, &st.end_seq) || !take_le(&in, &st.last_timestamp) ||
          !take_le(&in, &st.bytes_end) || !take_le(&in, &entries)) {
        return false;
      }
      if (entries > in.size() / 32) return false;
      for (uint64_t n = 0; n < entries; n++) {
        Relocation::Entry e;
        if (!take_le(&in, &e.base_seq) || !take_le(&in, &e.offset) || !take_le(&in, &e.first_timestamp) ||
            !take_le(&in, &e.bytes_before)) {
          return false;
        }
        st.entries.push_back(e);
      }
      r.streams.push_back(std::move(st));
    }
    summary->relocations.push_back(std::move(r));
  }
  if (!take_le(&in, &count)) return false;
  for (uint64_t i = 0; i < count; i++) {
    uint64_t stream_id, producer_id, appends;
    if (!take_le(&in, &stream_id) || !take_le(&in, &producer_id) || !take_le(&in, &appends)) return false;
    if (appends == 0 || appends > kProducerWindow) return false;
    auto [it, fresh] = summary->producers.try_emplace({stream_id, producer_id});
    if (!fresh) return false;  // Each (stream, producer) once.
    for (uint64_t n = 0; n < appends; n++) {
      SegmentSummary::ProducerAppend p;
      if (!take_le(&in, &p.producer_seq) || !take_le(&in, &p.start_seq) || !take_le(&in, &p.end_seq) ||
          !take_le(&in, &p.first_timestamp) || !take_le(&in, &p.last_timestamp)) {
        return false;
      }
      it->second.push_back(p);
    }
  }
  return in.empty();
}

}  // namespace runnel
