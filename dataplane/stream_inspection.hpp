// RTSP and FTP control connections, read in the worker that owns their flow: what a request
// sets up (RTP/RTCP and FTP data expectations in the shared session table), the reassembly
// buffers a connection borrows, and the undoing of it all when the connection ends.
//
// Per worker, like the flow table whose entries name the connections (FlowEntry::stream):
// only the session table entries it creates are shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dataplane/counters.hpp"
#include "dataplane/flow_table.hpp"
#include "dataplane/session_table.hpp"
#include "dataplane/sync_events.hpp"
#include "dataplane/snapshot.hpp"
#include "dataplane/stream_buffer.hpp"
#include "parsers/packet.hpp"

namespace tether::dataplane {

// RTP/RTCP ports one RTSP connection may set up (e.g. 4 media x RTP+RTCP).
inline constexpr unsigned kMaxRtpPorts = 8;

// The live expectation of RTP/RTCP from `client`:`port` for `service`: its position in the
// session table (negative: none) and its route.
inline std::int32_t find_rtp_expectation(const SessionTable& sessions, std::uint16_t service,
                                         const parsers::IpBytes& client, std::uint16_t port,
                                         std::uint64_t now, SessionRoute& route) {
  const SessionKey key = rtp_expectation_key(service, client, port);
  return sessions.find(key, session_signature(key), now, route);
}

// One TCP segment from the client of an inspected control connection.
struct Segment {
  parsers::IpBytes client;
  std::uint16_t service;
  std::uint8_t tcp_flags;
  std::uint32_t seq;
  std::span<const std::uint8_t> payload;
  // Admission reserved the connection's count (LiveCounts::try_add) on the control
  // connections of its protocol: taken over as the stream's count, or given back.
  bool reserved = false;
};

class StreamInspector {
 public:
  // `streams`: connections inspected at once (tables.dpi_sessions_per_worker); `buffers`:
  // reassembly buffers (tables.dpi_streams_per_worker).
  // `sync`: where expectations created and ended are reported for state sync.
  StreamInspector(std::uint32_t streams, std::uint32_t buffers, SessionTable& sessions,
                  WorkerCounters& counters, std::span<BackendCounters> backend_counters,
                  SyncEventQueue& sync);
  StreamInspector(const StreamInspector&) = delete;
  StreamInspector& operator=(const StreamInspector&) = delete;

  // A segment of the control connection of flow `entry`: starts its inspection (a SYN, or
  // the first segment with data), reads its requests, ends it on FIN or RST.
  void inspect(FlowEntry& entry, const Segment& segment, const ServiceView& service,
               std::uint64_t now);
  // The control connection closed or expired: its RTP expectations go with it.
  void end_stream(FlowEntry& entry, std::uint64_t now);

 private:
  // An inspected control connection (RTSP or FTP): what it set up, so that TEARDOWN or its
  // end can undo it, and where its next unread byte is. 48 bytes, one per connection from
  // its SYN to its end (tables.dpi_sessions_per_worker of them). A 2 KB reassembly buffer
  // is borrowed only while the connection holds a partial request or segments past a gap:
  // a request that arrives whole is read straight from its packet.
  struct Stream {
    parsers::IpBytes client;
    std::uint32_t next_seq;  // the first byte not read yet, once `anchored`
    std::uint32_t buffer;    // its reassembly buffer's index + 1; 0 while it needs none
    std::uint16_t service;
    std::uint16_t backend;
    SessionInspection dpi;
    // next_seq is known: from the client's SYN (ISN + 1), else from the first segment seen
    // since the connection was picked up or its inspection lost its place.
    bool anchored;
    bool session_counted;
    std::uint8_t rtp_port_count;
    std::uint16_t rtp_ports[kMaxRtpPorts];
  };
  static_assert(sizeof(Stream) <= 64);  // 48 today: a few dozen bytes per connection
  // A reassembly buffer and its place on the list by last use, which eviction takes from.
  struct BufferSlot {
    StreamBuffer buffer;
    std::uint32_t owner;  // index of the stream it is lent to
    std::uint32_t older;  // neighbours on the list by last use; kNoSlot at the ends
    std::uint32_t newer;
  };
  static constexpr std::uint32_t kNoSlot = UINT32_MAX;
  // What read_rtsp and read_ftp return when the stream cannot be read on from here.
  static constexpr std::size_t kUnreadable = SIZE_MAX;

  void read_segment(Stream& stream, std::uint32_t seq, std::span<const std::uint8_t> payload,
                    const ServiceView& service, std::uint64_t now);
  // Read the whole requests at the start of `data`: the bytes they take, or kUnreadable.
  std::size_t read_rtsp(Stream& stream, std::span<const std::uint8_t> data,
                        const ServiceView& service, std::uint64_t now);
  std::size_t read_ftp(Stream& stream, std::span<const std::uint8_t> data,
                       const ServiceView& service, std::uint64_t now);
  // The stream lost its place (a gap or request it cannot hold, a malformed request): its
  // buffer goes back and its next segment starts it again.
  void lose_place(Stream& stream);
  StreamBuffer& borrow_buffer(Stream& stream);
  void release_buffer(Stream& stream);
  void unlink_buffer(std::uint32_t index);
  void link_newest_buffer(std::uint32_t index);
  template <typename Apply>
  void for_each_rtp_expectation(const Stream& stream, std::uint64_t now, Apply apply);
  void end_rtp_expectations(Stream& stream, std::uint64_t now);
  void fallback(DpiFallback reason) { counters_.dpi_fallbacks[static_cast<std::size_t>(reason)]++; }
  LiveCounts& control_connections(SessionInspection dpi) {
    return sessions_->control_connections(dpi == SessionInspection::rtsp ? SessionTable::ControlProtocol::rtsp
                                                                         : SessionTable::ControlProtocol::ftp);
  }
  LiveCounts& control_connections(const Stream& stream) { return control_connections(stream.dpi); }
  void report_rtp_expectation(const Stream& stream, std::uint16_t port, bool ended);

  SessionTable* sessions_;
  SyncEventQueue& sync_;
  WorkerCounters& counters_;
  std::span<BackendCounters> backend_counters_;
  std::vector<Stream> streams_;
  std::vector<std::uint32_t> free_streams_;
  std::vector<BufferSlot> buffers_;
  std::vector<std::uint32_t> free_buffers_;
  std::uint32_t oldest_buffer_ = kNoSlot;  // the ends of the lent buffers' list by last use
  std::uint32_t newest_buffer_ = kNoSlot;
};

}  // namespace tether::dataplane
