// IP fragments of a service's traffic: what the workers share about a datagram, and what
// each holds while a datagram's route is not known yet.
//
// A datagram's first fragment carries the ports (and a SIP datagram's Call-ID, usually) and is
// routed as any packet; its route is then written to the fragment table, which the later
// fragments follow. The table is a second SessionTable (dataplane/session_table.hpp) of its
// own size, keyed by (source, destination, identification, protocol): shared by the workers
// because RSS may give the fragments of one datagram to several (it hashes a fragment by its
// addresses, or by its ports where it has them), lock-free for readers and adders, swept by
// the control thread, and apart from the session table so that a flood of fragments can never
// take a SIP call's room. An entry lives `timeout` from its first fragment.
//
// A fragment that comes before its first fragment waits in its worker's FragmentBuffer
// (bounded in count, per source address and in time); the worker looks its datagram up in the
// table once a loop pass and forwards it when the first fragment has been routed, on any
// worker. A SIP datagram whose header block does not end in its first fragment is reassembled
// (bounded in bytes, count and time) by the worker that received the first fragment, routed
// by its Call-ID, and forwarded as the original fragments (see docs/design.md). That worker
// owns the reassembly, and the table says so: another worker that gets a piece of the
// datagram hands it over through the owner's FragmentHandoffs ring, which the owner drains
// once a loop pass, so a datagram RSS spread over several workers is reassembled all the same.
//
// Once every byte of a datagram went through, the table marks it complete: its
// identification may come again (IPv4's 16 bits wrap within the timeout at 33,000
// datagrams a second), and a fragment of it then starts, or waits for, a new datagram instead
// of being refused as an overlap. Overlaps within a datagram not complete are still refused,
// the whole datagram with them (RFC 5722).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "dataplane/session_table.hpp"
#include "dataplane/tunnel.hpp"
#include "parsers/fragment.hpp"
#include "parsers/sip.hpp"

struct rte_ring;

namespace tether::dataplane {

// The `fragments` configuration group (control/config.hpp reads it).
struct FragmentSettings {
  std::uint32_t table = 8192;          // datagrams followed at once, all workers (1 KB each)
  std::uint32_t buffer_per_worker = 256;  // fragments a worker holds for a route or a reassembly
  std::uint32_t per_source = 64;       // of which from one source address
  std::uint32_t timeout_ms = 2000;     // from the first fragment (table), from arrival (held)
  bool operator==(const FragmentSettings&) const = default;
};
inline constexpr std::uint32_t kMinFragmentTable = 64;
inline constexpr std::uint32_t kMaxFragmentTable = std::uint32_t{1} << 22;
inline constexpr std::uint32_t kMaxFragmentBuffer = 65536;

// Fragments one datagram may have: 64 are a 64 KB datagram over IPv6's minimum MTU of 1280.
inline constexpr std::uint16_t kMaxFragmentsPerDatagram = 64;
// A SIP datagram reassembled to find its Call-ID may be at most this long: RFC 3261 18.1.1
// has SIP move to TCP above 1300 bytes, and what comes over UDP all the same (IMS headers,
// long SDP) stays far below.
inline constexpr std::uint32_t kMaxReassembledBytes = 16384;
// Datagrams a worker reassembles at once.
inline constexpr unsigned kReassembliesPerWorker = 16;

// A fragment table entry's route (the SessionTable's SessionRoute, read this way).
// backend: the backend the first fragment went to; or one of the markers below.
// service field: for a backend, the first fragment's header_end (low 14 bits) and the
// service's forwarding (top 2 bits: later fragments carry no ports to find their service by,
// and go through the same tunnel); for kFragmentReassembling, the worker reassembling; for
// kFragmentRefused, the DropReason every later fragment gets; for kFragmentComplete, 0.
inline constexpr std::uint16_t kFragmentRefused = 0xfffe;
inline constexpr std::uint16_t kFragmentReassembling = 0xfffd;
// Every byte of the datagram went through: a first fragment under its key starts a new
// datagram, a later one waits for its own first fragment.
inline constexpr std::uint16_t kFragmentComplete = 0xfffc;
// A first fragment's headers end within its 9216-byte jumbo frame at most: 14 bits.
inline constexpr std::uint32_t kFragmentHeaderEndMask = 0x3fff;
inline SessionRoute fragment_route(std::uint16_t backend, std::uint32_t header_end, Forwarding forwarding) {
  return {backend, static_cast<std::uint16_t>((header_end & kFragmentHeaderEndMask) |
                                              (static_cast<std::uint32_t>(forwarding) << 14))};
}
inline std::uint32_t fragment_header_end(const SessionRoute& route) { return route.service & kFragmentHeaderEndMask; }
inline Forwarding fragment_forwarding(const SessionRoute& route) { return static_cast<Forwarding>(route.service >> 14); }

// The shared table: a SessionTable whose entries also hold which 8-byte units of their datagram
// have gone through, so that an overlapping fragment is refused whichever worker forwarded the
// fragment it overlaps (RFC 5722). One bit per unit of the largest datagram: 1 KB an entry.
class FragmentTable : public SessionTable {
 public:
  FragmentTable(const char* name, std::uint32_t capacity, unsigned readers, int socket);
  ~FragmentTable();
  // Marks bytes `offset` to `offset + length` of the datagram at `position` as seen: false if
  // any of them had been (an overlap, or a duplicate). Atomic per 64 units, so two workers
  // marking one unit at once see it once.
  bool cover(std::int32_t position, std::uint32_t offset, std::uint32_t length);
  // Counts the bytes of a fragment that cover() found fresh toward its datagram's length,
  // which its last fragment (`last`) sets.
  enum class Progress : std::uint8_t {
    partial,
    complete,     // this fragment completed the datagram: true for exactly one fragment
    contradicts,  // a second last fragment, or bytes past the last one's end: an overlap
  };
  Progress count_bytes(std::int32_t position, std::uint32_t offset, std::uint32_t length, bool last);
  // Whether every byte of the datagram at `position` went through.
  bool complete(std::int32_t position) const;
  // A new datagram in the entry: nothing went through yet, no fragment counted. For the worker
  // that routed its first fragment, whether its add() created the entry or took over one
  // that had expired unswept or was complete. (A position is reused only after every worker
  // passed a quiescent state, so no one still marks a deleted entry's.)
  void restart(std::int32_t position);
  // The session table's bytes and the coverage's.
  std::uint64_t memory_bytes() const { return SessionTable::memory_bytes() + own_bytes_; }

  static constexpr std::uint32_t kMaxDatagramUnits = (parsers::kMaxDatagram + 7) / 8;
  static constexpr std::uint32_t kCoverageWords = (kMaxDatagramUnits + 63) / 64;

 private:
  std::atomic<std::uint64_t>* coverage_ = nullptr;  // kCoverageWords per position
  // Per position: the datagram's length + 1 once its last fragment went through (high 32
  // bits, 0 before) and the bytes that went through (low 32 bits), in one word so that
  // exactly one fragment sees them meet.
  std::atomic<std::uint64_t>* progress_ = nullptr;
  std::uint64_t own_bytes_ = 0;
};

// (source, destination, identification, protocol). The destination, a VIP, is folded to the
// 8-byte digest: exact for IPv4; for IPv6 its two halves XORed, which two configured VIPs
// would have to share for their fragments to meet.
SessionKey fragment_key(const parsers::Fragment& fragment);

// A SIP datagram's first fragment whose header block goes on into later fragments: the
// Call-ID may be there, and the From tag and the headers content rules read. Reassembled.
inline bool sip_headers_cut(const parsers::sip::Message& message) {
  return message.status == parsers::Status::malformed &&
         (message.reason == parsers::sip::Reason::headers_unterminated ||
          message.reason == parsers::sip::Reason::first_line_unterminated);
}

// One worker's fragments waiting for their datagram's route or reassembly. Not shared; every
// operation is a scan of at most `capacity` pieces, so cost stays bounded whatever arrives.
class FragmentBuffer {
 public:
  struct Piece {
    void* packet;  // the rte_mbuf, owned by the buffer while held
    SessionKey key;
    std::uint32_t signature;
    std::uint32_t offset;  // in the datagram's fragmentable part
    std::uint16_t length;
    bool more;
    std::uint16_t data_offset;  // in the frame
    std::uint64_t arrived;
    bool handed = false;  // came from another worker (FragmentHandoffs): never handed on again
    bool counted_held = false;  // in fragments_held already (held on the worker that handed it)
  };
  enum class Admit : std::uint8_t {
    held,
    full,          // `capacity` pieces held
    source_limit,  // `per_source` pieces of this source address held
    overlap,       // overlaps a held piece of its datagram (RFC 5722: the datagram is dropped)
    too_many,      // kMaxFragmentsPerDatagram pieces of its datagram held
  };

  FragmentBuffer(std::uint32_t capacity, std::uint32_t per_source);

  Admit hold(const Piece& piece);
  // Removes the pieces `remove(piece, index)` says true for, in arrival order; `remove` may
  // keep a copy, and must not call into the buffer.
  template <typename Remove>
  void remove_if(Remove&& remove) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < pieces_.size(); ++i)
      if (!remove(static_cast<const Piece&>(pieces_[i]), static_cast<std::uint32_t>(i))) pieces_[kept++] = pieces_[i];
    pieces_.resize(kept);
  }
  // The pieces of one datagram, in arrival order.
  template <typename Visit>
  void for_each_of(const SessionKey& key, Visit&& visit) const {
    for (const Piece& piece : pieces_)
      if (same_datagram(piece.key, key)) visit(piece);
  }
  // The length of the datagram once every piece from 0 to its last is held without a gap,
  // else 0. Held pieces never overlap (hold() refuses it).
  std::uint32_t complete_length(const SessionKey& key) const;
  std::uint32_t size() const { return static_cast<std::uint32_t>(pieces_.size()); }
  bool empty() const { return pieces_.empty(); }

  static bool same_datagram(const SessionKey& a, const SessionKey& b);

 private:
  std::uint32_t capacity_;
  std::uint32_t per_source_;
  std::vector<Piece> pieces_;  // reserved at capacity: holding never allocates
};

// One ring per worker through which the other workers hand it the pieces of the datagrams it
// reassembles: rte_ring, multi-producer, single-consumer (the owner drains its own once a loop
// pass), of FragmentBuffer::Piece values whose mbufs the ring owns while they wait. Bounded:
// a piece that finds its owner's ring full is dropped (fragment_handoff_full).
class FragmentHandoffs {
 public:
  // `capacity`: pieces one ring holds (the owner's buffer holds no more either).
  FragmentHandoffs(unsigned workers, std::uint32_t capacity, int socket);
  ~FragmentHandoffs();  // frees the pieces still in the rings: the workers must have stopped
  FragmentHandoffs(const FragmentHandoffs&) = delete;
  FragmentHandoffs& operator=(const FragmentHandoffs&) = delete;

  // Any worker: false if `owner`'s ring is full (the piece stays the caller's).
  bool hand(unsigned owner, FragmentBuffer::Piece piece);  // a copy: DPDK takes a void*
  // The owner only: up to `n` pieces, now its own.
  unsigned take(unsigned owner, FragmentBuffer::Piece* pieces, unsigned n);
  unsigned workers() const { return static_cast<unsigned>(rings_.size()); }
  // Heap bytes of the rings.
  std::uint64_t memory_bytes() const { return memory_bytes_; }

 private:
  void free_rings();
  std::vector<rte_ring*> rings_;
  std::uint64_t memory_bytes_ = 0;
};

}  // namespace tether::dataplane
