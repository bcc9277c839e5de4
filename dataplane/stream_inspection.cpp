#include "dataplane/stream_inspection.hpp"

#include <algorithm>

#include "parsers/ftp.hpp"
#include "parsers/rtsp.hpp"

namespace tether::dataplane {
namespace {

constexpr std::size_t kMaxFtpLine = 512;

}  // namespace

StreamInspector::StreamInspector(std::uint32_t stream_capacity, std::uint32_t buffer_capacity,
                                 SessionTable& sessions, WorkerCounters& counters,
                                 std::span<BackendCounters> backend_counters, SyncEventQueue& sync)
    : sessions_(&sessions),
      sync_(sync),
      counters_(counters),
      backend_counters_(backend_counters),
      streams_(stream_capacity),
      buffers_(buffer_capacity) {
  free_streams_.reserve(stream_capacity);
  for (std::uint32_t i = stream_capacity; i > 0; --i) free_streams_.push_back(i - 1);
  free_buffers_.reserve(buffer_capacity);
  for (std::uint32_t i = buffer_capacity; i > 0; --i) free_buffers_.push_back(i - 1);
}

void StreamInspector::inspect(FlowEntry& entry, const Segment& segment,
                              const ServiceView& service, std::uint64_t now) {
  const bool closing = (segment.tcp_flags & (parsers::kTcpFin | parsers::kTcpRst)) != 0;
  const bool syn = (segment.tcp_flags & (parsers::kTcpSyn | parsers::kTcpAck)) == parsers::kTcpSyn;
  bool reserved = segment.reserved;
  if (entry.stream == 0 && (syn || !segment.payload.empty())) {
    if (free_streams_.empty()) {
      fallback(DpiFallback::no_stream_state);
      if (reserved) control_connections(service.dpi).remove(entry.backend);  // counts nothing
      return;
    }
    const std::uint32_t index = free_streams_.back();
    free_streams_.pop_back();
    Stream& stream = streams_[index];
    stream.client = segment.client;
    stream.next_seq = 0;
    stream.buffer = 0;
    stream.service = segment.service;
    stream.backend = entry.backend;
    stream.dpi = service.dpi;
    stream.anchored = false;
    stream.session_counted = false;
    stream.rtp_port_count = 0;
    entry.stream = (index + 1) & kFlowStreamMask;
    // What admission's max_sessions counts: reserved by admission, or counted now.
    if (!reserved) control_connections(stream).add(stream.backend);
    reserved = false;
  }
  if (reserved) control_connections(service.dpi).remove(entry.backend);  // a stream counted already
  if (entry.stream == 0) return;
  Stream& stream = streams_[entry.stream - 1];
  std::uint32_t seq = segment.seq;
  if (syn) {
    // The client's SYN, which a one-way balancer sees: the stream's first byte is ISN + 1,
    // so a later segment that overtakes the first one is known to lie past a gap. A SYN that
    // names another ISN starts the stream again.
    seq += 1;
    if (!stream.anchored || stream.next_seq != seq) {
      if (stream.buffer != 0) release_buffer(stream);
      stream.anchored = true;
      stream.next_seq = seq;
    }
  }
  if (!segment.payload.empty()) read_segment(stream, seq, segment.payload, service, now);
  if (closing) end_stream(entry, now);
}

// One segment of a control connection: requests that arrive whole where the stream stands
// are read from the packet itself; a partial request, or a segment past a gap, goes into a
// borrowed reassembly buffer, which goes back as soon as it holds nothing.
void StreamInspector::read_segment(Stream& stream, std::uint32_t seq, std::span<const std::uint8_t> payload,
                          const ServiceView& service, std::uint64_t now) {
  const auto read = [&](std::span<const std::uint8_t> data) {
    return stream.dpi == SessionInspection::rtsp ? read_rtsp(stream, data, service, now)
                                       : read_ftp(stream, data, service, now);
  };
  if (!stream.anchored) {
    stream.anchored = true;
    stream.next_seq = seq;
  }
  if (stream.buffer == 0) {
    // Sequence arithmetic modulo 2^32: negative is before the stream's next byte.
    const std::int32_t offset = static_cast<std::int32_t>(seq - stream.next_seq);
    if (offset < 0) {
      const auto skip = static_cast<std::uint32_t>(-static_cast<std::int64_t>(offset));
      if (skip >= payload.size()) return;  // a retransmission of what was read
      payload = payload.subspan(skip);
      seq = stream.next_seq;
    }
    if (seq == stream.next_seq) {
      const std::size_t taken = read(payload);
      if (taken == kUnreadable) return lose_place(stream);
      stream.next_seq += static_cast<std::uint32_t>(taken);
      if (taken == payload.size()) return;
      payload = payload.subspan(taken);  // a partial request: the rest waits in a buffer
      seq = stream.next_seq;
    } else if (static_cast<std::uint64_t>(offset) + payload.size() > StreamBuffer::kCapacity) {
      // Past any window a buffer has: refused before it could take one from another stream.
      fallback(DpiFallback::stream_overflow);
      return lose_place(stream);
    }
    borrow_buffer(stream).start(stream.next_seq);
  } else {
    unlink_buffer(stream.buffer - 1);
    link_newest_buffer(stream.buffer - 1);
  }
  StreamBuffer& buffer = buffers_[stream.buffer - 1].buffer;
  switch (buffer.add(seq, payload)) {
    case StreamBuffer::Result::ok: break;
    case StreamBuffer::Result::gap: fallback(DpiFallback::stream_gap); return lose_place(stream);
    case StreamBuffer::Result::overflow:
      fallback(DpiFallback::stream_overflow);
      return lose_place(stream);
  }
  if (!buffer.data().empty()) {
    const std::size_t taken = read(buffer.data());
    if (taken == kUnreadable) return lose_place(stream);
    buffer.consume(static_cast<std::uint32_t>(taken));
  }
  if (buffer.empty()) {
    stream.next_seq = buffer.next_seq();
    release_buffer(stream);
  }
}

void StreamInspector::lose_place(Stream& stream) {
  if (stream.buffer != 0) release_buffer(stream);
  stream.anchored = false;
}

// A reassembly buffer for `stream`: a free one, else the one used least recently, taken
// from the stream that held it (its partial request is lost, counted as stream_evicted, and
// that stream starts again at its next segment). Idle connections thus never lock out new
// ones: one client holding many partial requests loses the oldest of them.
StreamBuffer& StreamInspector::borrow_buffer(Stream& stream) {
  std::uint32_t index;
  if (!free_buffers_.empty()) {
    index = free_buffers_.back();
    free_buffers_.pop_back();
  } else {
    index = oldest_buffer_;
    Stream& victim = streams_[buffers_[index].owner];
    unlink_buffer(index);
    victim.buffer = 0;
    victim.anchored = false;
    fallback(DpiFallback::stream_evicted);
  }
  buffers_[index].owner = static_cast<std::uint32_t>(&stream - streams_.data());
  link_newest_buffer(index);
  stream.buffer = index + 1;
  return buffers_[index].buffer;
}

void StreamInspector::release_buffer(Stream& stream) {
  const std::uint32_t index = stream.buffer - 1;
  unlink_buffer(index);
  free_buffers_.push_back(index);
  stream.buffer = 0;
}

void StreamInspector::unlink_buffer(std::uint32_t index) {
  BufferSlot& slot = buffers_[index];
  (slot.older != kNoSlot ? buffers_[slot.older].newer : oldest_buffer_) = slot.newer;
  (slot.newer != kNoSlot ? buffers_[slot.newer].older : newest_buffer_) = slot.older;
}

void StreamInspector::link_newest_buffer(std::uint32_t index) {
  BufferSlot& slot = buffers_[index];
  slot.older = newest_buffer_;
  slot.newer = kNoSlot;
  (newest_buffer_ != kNoSlot ? buffers_[newest_buffer_].newer : oldest_buffer_) = index;
  newest_buffer_ = index;
}

std::size_t StreamInspector::read_rtsp(Stream& stream, std::span<const std::uint8_t> input,
                             const ServiceView& service, std::uint64_t now) {
  namespace rtsp = parsers::rtsp;
  std::size_t taken = 0;
  for (;;) {
    const auto data = input.subspan(taken);
    if (data.empty()) return taken;
    const rtsp::Extent extent = rtsp::message_extent(data);
    if (extent.status == parsers::Status::need_more) {
      // A partial message waits in a buffer, unless it can never fit one.
      if (data.size() >= StreamBuffer::kCapacity) {
        fallback(DpiFallback::stream_overflow);
        return kUnreadable;
      }
      return taken;
    }
    if (extent.status != parsers::Status::parsed) {
      fallback(DpiFallback::rtsp_malformed);
      return kUnreadable;
    }
    const rtsp::Message message = rtsp::parse(data.first(extent.size));
    if (message.status == parsers::Status::parsed && message.kind == rtsp::Kind::request) {
      counters_.messages_inspected[static_cast<std::size_t>(SessionProtocol::rtsp)]++;
      if (message.method == rtsp::Method::SETUP) {
        for (std::size_t t = 0; t < message.transport_count; ++t) {
          const rtsp::TransportSpec& spec = message.transports[t];
          if (spec.lower != rtsp::LowerTransport::udp || spec.interleaved.present ||
              spec.delivery == rtsp::Delivery::multicast)
            continue;  // no UDP flow from the client follows
          // The client's RTP and RTCP ports: RTSP/1.0 client_port and RTSP/2.0 dest_addr name
          // where it receives, which is where it sends its RTCP (and keepalives) from;
          // RTSP/2.0 src_addr names where it sends from (RECORD). Keyed by the control
          // connection's client address whatever host an address names: a client steers only
          // its own flows (and one behind a NAT writes its private address).
          const std::uint16_t announced[] = {
              spec.client_port.present ? spec.client_port.first : std::uint16_t{0},
              spec.client_port.present ? spec.client_port.last : std::uint16_t{0},
              spec.dest_rtp_port, spec.dest_rtcp_port, spec.src_rtp_port, spec.src_rtcp_port};
          for (std::uint16_t port : announced) {
            if (port == 0) continue;
            const std::uint16_t* begin = stream.rtp_ports;
            const std::uint16_t* end = begin + stream.rtp_port_count;
            if (std::find(begin, end, port) != end) continue;
            if (stream.rtp_port_count == kMaxRtpPorts) {
              fallback(DpiFallback::too_many_streams);
              continue;
            }
            const SessionKey key = rtp_expectation_key(stream.service, stream.client, port);
            if (sessions_->add(key, session_signature(key), {stream.backend, stream.service},
                               now + service.session_timeout_tsc) < 0) {
              fallback(DpiFallback::session_table_full);
              continue;
            }
            stream.rtp_ports[stream.rtp_port_count++] = port;
            counters_.expectations_created[static_cast<std::size_t>(Expectation::rtp)]++;
            report_rtp_expectation(stream, port, false);
            if (!stream.session_counted) {
              stream.session_counted = true;
              counters_.sessions_created[static_cast<std::size_t>(SessionProtocol::rtsp)]++;
              backend_counters_[stream.backend].sessions++;
            }
          }
        }
      } else if (message.method == rtsp::Method::TEARDOWN) {
        // One TEARDOWN ends the connection's streams: clients tear down whole sessions.
        end_rtp_expectations(stream, now);
        if (stream.session_counted)
          counters_.sessions_ended[static_cast<std::size_t>(SessionProtocol::rtsp)]++;
        stream.session_counted = false;
      } else {
        // Any other request (GET_PARAMETER, OPTIONS keepalives) keeps the streams alive.
        for_each_rtp_expectation(stream, now, [&](std::int32_t position, std::uint16_t port) {
          sessions_->refresh(position, now + service.session_timeout_tsc);
          report_rtp_expectation(stream, port, false);
        });
      }
    }
    taken += extent.size;
  }
}

std::size_t StreamInspector::read_ftp(Stream& stream, std::span<const std::uint8_t> input,
                             const ServiceView& service, std::uint64_t now) {
  namespace ftp = parsers::ftp;
  std::size_t taken = 0;
  for (;;) {
    const auto data = input.subspan(taken);
    if (data.empty()) return taken;
    const ftp::Command command = ftp::parse_command(data);
    if (command.status == parsers::Status::need_more) {
      if (data.size() >= kMaxFtpLine) {
        fallback(DpiFallback::stream_overflow);
        return kUnreadable;
      }
      return taken;
    }
    counters_.messages_inspected[static_cast<std::size_t>(SessionProtocol::ftp)]++;
    if (!stream.session_counted) {
      stream.session_counted = true;
      counters_.sessions_created[static_cast<std::size_t>(SessionProtocol::ftp)]++;
      backend_counters_[stream.backend].sessions++;
    }
    if (command.status == parsers::Status::malformed) {
      fallback(DpiFallback::ftp_malformed);
    } else if (command.status == parsers::Status::parsed &&
               (command.verb == ftp::Verb::PASV ||
                (command.verb == ftp::Verb::EPSV && command.epsv != ftp::EpsvMode::all))) {
      // One more outstanding expectation of the client address: control connections
      // behind one address (NAT) issue PASV at the same moment, each waits for its own.
      switch (sessions_->add_ftp_expectation(stream.service, stream.client, stream.backend, now,
                                             now + service.expectation_timeout_tsc)) {
        case FtpExpectationAdd::added:
          counters_.expectations_created[static_cast<std::size_t>(Expectation::ftp_data)]++;
          if (sync_.enabled())
            sync_.emit(expectation_event(SessionKind::ftp_expectation, stream.service, stream.client, 0,
                                         stream.backend, false));
          break;
        case FtpExpectationAdd::client_full:
          fallback(DpiFallback::too_many_expectations);
          break;
        case FtpExpectationAdd::table_full:
          fallback(DpiFallback::session_table_full);
          break;
      }
    }
    if (command.size == 0) return kUnreadable;  // not for a whole line; never loop in place
    taken += command.size;
  }
}

template <typename Apply>
void StreamInspector::for_each_rtp_expectation(const Stream& stream, std::uint64_t now, Apply apply) {
  for (std::uint8_t i = 0; i < stream.rtp_port_count; ++i) {
    SessionRoute route;
    const std::int32_t position =
        find_rtp_expectation(*sessions_, stream.service, stream.client, stream.rtp_ports[i], now, route);
    if (position >= 0) apply(position, stream.rtp_ports[i]);
  }
}

void StreamInspector::report_rtp_expectation(const Stream& stream, std::uint16_t port, bool ended) {
  if (sync_.enabled())
    sync_.emit(expectation_event(SessionKind::rtp_expectation, stream.service, stream.client, port,
                                 stream.backend, ended));
}

// Expired from before `now`, not at it: media that follows the TEARDOWN in the same burst
// (read with the same clock) is dropped too, as is media on another worker's later bursts.
void StreamInspector::end_rtp_expectations(Stream& stream, std::uint64_t now) {
  for_each_rtp_expectation(stream, now, [&](std::int32_t position, std::uint16_t port) {
    sessions_->shorten(position, now - 1);
    report_rtp_expectation(stream, port, true);
  });
  stream.rtp_port_count = 0;
}

// The control connection closed or expired: its RTP expectations go with it.
void StreamInspector::end_stream(FlowEntry& entry, std::uint64_t now) {
  Stream& stream = streams_[entry.stream - 1];
  end_rtp_expectations(stream, now);
  control_connections(stream).remove(stream.backend);
  if (stream.session_counted) {
    const SessionProtocol protocol = stream.dpi == SessionInspection::rtsp ? SessionProtocol::rtsp : SessionProtocol::ftp;
    counters_.sessions_ended[static_cast<std::size_t>(protocol)]++;
  }
  stream.session_counted = false;
  if (stream.buffer != 0) release_buffer(stream);
  free_streams_.push_back(entry.stream - 1);
  entry.stream = 0;
}

}  // namespace tether::dataplane
