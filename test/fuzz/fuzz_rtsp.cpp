// libFuzzer target for the RTSP parser: parse(), message_extent(), and walking a stream
// message by message. Besides crashes and sanitizer reports it aborts when a result breaks
// the parser's contract.
#include "parsers/rtsp.hpp"

#include "test/fuzz/fuzz_contract.hpp"

#include <cstdlib>

namespace rtsp = tether::parsers::rtsp;
using tether::parsers::ByteSpan;
using tether::parsers::Status;

using tether::fuzz::expect;
using tether::fuzz::expect_inside;

namespace {

void expect_range(const rtsp::Range& r, std::uint16_t min) {
  expect(!r.present || (r.first >= min && r.first <= r.last));
}

void check(const rtsp::Message& m, ByteSpan input) {
  expect(rtsp::to_string(m.reason) != nullptr);
  for (std::string_view view : {m.method_name, m.url, m.reason_phrase, m.session_id, m.headers})
    expect_inside(view, input);
  expect(m.transport_count <= rtsp::max_transports);
  for (std::size_t i = 0; i < m.transport_count; ++i) {
    const rtsp::TransportSpec& t = m.transports[i];
    for (std::string_view view : {t.spec, t.protocol, t.profile, t.lower_name, t.destination,
                                  t.dest_addr, t.dest_rtp_host, t.dest_rtcp_host, t.src_addr,
                                  t.src_rtp_host, t.src_rtcp_host})
      expect_inside(view, input);
    // An address's host and port come from its list, which lies inside the spec.
    for (std::string_view host : {t.dest_rtp_host, t.dest_rtcp_host})
      expect(host.empty() || (host.data() >= t.dest_addr.data() &&
                              host.data() + host.size() <= t.dest_addr.data() + t.dest_addr.size()));
    for (std::string_view host : {t.src_rtp_host, t.src_rtcp_host})
      expect(host.empty() || (host.data() >= t.src_addr.data() &&
                              host.data() + host.size() <= t.src_addr.data() + t.src_addr.size()));
    expect((t.dest_rtp_port == 0 && t.dest_rtcp_port == 0) || !t.dest_addr.empty());
    expect((t.src_rtp_port == 0 && t.src_rtcp_port == 0) || !t.src_addr.empty());
    for (std::string_view list : {t.dest_addr, t.src_addr})
      expect(list.empty() || (list.data() >= t.spec.data() &&
                              list.data() + list.size() <= t.spec.data() + t.spec.size()));
    expect(!t.protocol.empty() && !t.profile.empty());
    expect_range(t.client_port, 1);
    expect_range(t.server_port, 1);
    expect_range(t.interleaved, 0);
    expect(t.interleaved.last <= 255);
  }
  if (m.status != Status::parsed) return;
  expect(m.header_count <= rtsp::max_headers);
  expect(m.kind != rtsp::Kind::request || m.version == 1 || m.version == 2);
  // The header block parses the same without the bytes that follow it.
  if (m.kind != rtsp::Kind::interleaved) {
    std::size_t header_end = static_cast<std::size_t>(
        m.headers.data() + m.headers.size() - reinterpret_cast<const char*>(input.data()));
    expect(header_end <= input.size() && m.size == header_end + m.content_length);
    rtsp::Message alone = rtsp::parse(input.first(header_end));
    expect(alone.status == Status::parsed && alone.size == m.size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteSpan rest(data, size);
  for (;;) {
    rtsp::Message m = rtsp::parse(rest);
    check(m, rest);
    rtsp::Extent e = rtsp::message_extent(rest);
    expect(e.status == m.status || (e.status == Status::need_more && m.size > rest.size()));
    if (e.status != Status::parsed) break;
    expect(e.size == m.size && e.size > 0 && e.size <= rest.size());
    rest = rest.subspan(e.size);
  }
  return 0;
}
