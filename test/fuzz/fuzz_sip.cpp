// libFuzzer target for the SIP parser: both framings, header lookups, the Call-ID digest,
// and walking a stream message by message. Besides crashes and sanitizer reports it aborts
// when a result breaks the parser's contract.
#include "parsers/sip.hpp"
#include "parsers/sip_response.hpp"

#include "test/fuzz/fuzz_contract.hpp"

#include <cstdlib>
#include <string>

namespace sip = tether::parsers::sip;
using tether::parsers::ByteSpan;
using tether::parsers::Status;

using tether::fuzz::expect;
using tether::fuzz::expect_inside;

namespace {

void check(const sip::Message& m, ByteSpan input, sip::Framing how) {
  expect(sip::to_string(m.reason) != nullptr);
  for (std::string_view view : {m.method_name, m.request_uri, m.reason_phrase, m.call_id,
                                m.cseq_method_name, m.headers, m.body})
    expect_inside(view, input);
  if (m.status != Status::parsed && m.reason != sip::Reason::call_id_missing) return;
  expect(m.size <= input.size());
  expect(m.header_count <= sip::max_headers);
  if (m.kind == sip::Kind::keepalive) return;
  expect(m.status != Status::parsed || !m.call_id.empty());
  // A Call-ID of any length is a view into the header block, and its digest covers all of
  // it: equal to the digest of the unfolded bytes, copied here (the parser never copies).
  if (m.status == Status::parsed) {
    expect(m.call_id.data() >= m.headers.data() &&
           m.call_id.data() + m.call_id.size() <= m.headers.data() + m.headers.size());
    std::string unfolded;
    tether::parsers::text::UnfoldedReader reader(m.call_id);
    for (int c = reader.next(); c >= 0; c = reader.next()) unfolded.push_back(static_cast<char>(c));
    expect(sip::hash_unfolded(unfolded, 7) == sip::hash_unfolded(m.call_id, 7));
    expect(sip::equal_unfolded(unfolded, m.call_id));
    if (auto to = sip::find_header(m, "To")) {
      if (auto tag = sip::tag_parameter(*to))
        expect(tag->data() >= to->data() && tag->data() + tag->size() <= to->data() + to->size());
      expect(sip::outside_dialog(m) == (m.kind == sip::Kind::request && !sip::tag_parameter(*to)));
    }
  }
  for (std::string_view name : {"Call-ID", "i", "From", "t", "Via", "Content-Type", "X-Unknown"})
    if (auto value = sip::find_header(m, name)) expect_inside(*value, input);
  if (m.status == Status::parsed) {
    auto first_call_id = sip::find_header(m, "Call-ID");
    expect(first_call_id && sip::equal_unfolded(*first_call_id, m.call_id));
    expect(sip::hash_unfolded(*first_call_id, 42) == sip::hash_unfolded(m.call_id, 42));
    // The 503 tetherd answers a refused request with: inside its buffer, and itself a SIP
    // response that parses, with the request's Call-ID.
    char out[2048];
    const sip::BuiltResponse built =
        sip::build_response(m, {"192.0.2.1", 5060}, {503, "Service Unavailable", 30, "tt1"}, out);
    expect(built.size <= sizeof out);
    if (built.size != 0) {
      const sip::Message response = sip::parse(
          ByteSpan(reinterpret_cast<const std::uint8_t*>(out), built.size), sip::Framing::datagram);
      expect(response.status == Status::parsed && response.kind == sip::Kind::response &&
             response.status_code == 503 && response.size == built.size);
      expect(sip::equal_unfolded(response.call_id, m.call_id));
      // To the top Via's maddr (RFC 3261 18.2.2) at a real port; TTL 64 unless multicast.
      expect(built.port != 0);
      expect(built.to_maddr || !built.maddr_multicast);
      expect(built.maddr_multicast || built.ttl == 64);
    }
    // A stream message parses the same without the bytes that follow it.
    if (how == sip::Framing::stream) {
      sip::Message alone = sip::parse(input.first(m.size), how);
      expect(alone.status == Status::parsed && alone.size == m.size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteSpan input(data, size);
  check(sip::parse(input, sip::Framing::datagram), input, sip::Framing::datagram);

  ByteSpan rest = input;
  for (;;) {
    sip::Message m = sip::parse(rest, sip::Framing::stream);
    check(m, rest, sip::Framing::stream);
    if (m.status != Status::parsed || m.size == 0 || m.size >= rest.size()) break;
    rest = rest.subspan(m.size);
  }
  return 0;
}
