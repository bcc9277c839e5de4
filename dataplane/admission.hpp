// Admission of new sessions (docs/design.md "Admission"): the rate limits shared by every
// worker, a worker's memory of the SIP calls it refused, and the frames a refusal sends.
//
// Rates are GCRA token buckets (a "theoretical arrival time" per bucket, moved by one
// compare-and-swap per admitted session), shared by all workers, so that a client whose flows
// RSS spreads over several workers has one rate, not one per worker. Only new sessions touch
// them; established traffic never does.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "dataplane/limits.hpp"
#include "parsers/packet.hpp"

namespace tether::dataplane {

// One GCRA bucket: admits one session per `interval` on average, `tolerance` ahead at most
// (a second's worth: the burst a rate allows).
class RateBucket {
 public:
  bool conforms(std::uint64_t now, std::uint64_t tolerance) const {
    return tat_.load(std::memory_order_relaxed) <= now + tolerance;
  }
  void charge(std::uint64_t now, std::uint64_t interval) {
    std::uint64_t tat = tat_.load(std::memory_order_relaxed);
    while (!tat_.compare_exchange_weak(tat, (tat > now ? tat : now) + interval, std::memory_order_relaxed)) {
    }
  }

 private:
  std::atomic<std::uint64_t> tat_{0};
};

// Per-client rates in bounded memory that spoofed sources cannot exhaust: kRows rows of
// kBuckets buckets, a client charging one bucket in each row, chosen by a keyed hash of its
// address (count-min sketch style). A client is over its rate only when every one of its
// buckets is; a false positive needs each of its buckets shared with clients that together
// exceed the rate, which a flood of spoofed sources achieves only beyond about
// kBuckets x rate new sessions a second (then the service rate is the guard). The key is
// random per process, so nobody can aim collisions at a victim's buckets.
class ClientRates {
 public:
  static constexpr unsigned kRows = 2;
  static constexpr unsigned kBuckets = 4096;  // per row: 64 KB in all
  ClientRates();
  bool conforms(const parsers::IpBytes& client, std::uint64_t now, std::uint64_t tolerance) const;
  void charge(const parsers::IpBytes& client, std::uint64_t now, std::uint64_t interval);

 private:
  std::uint32_t bucket(unsigned row, const parsers::IpBytes& client) const;
  std::uint64_t key_[kRows];
  RateBucket buckets_[kRows][kBuckets];
};

// Shared by all workers, made once by Links.
struct AdmissionLimits {
  RateBucket services[kMaxServices];
  ClientRates clients;
};

// A worker's memory of the Call-IDs it refused in the last kRefusalMemory_s, so that a
// refused INVITE's retransmissions get the same 503 even when room appeared meanwhile (RFC
// 3261 17.2.1: the server transaction answers retransmissions alike). Retransmissions come
// from the same source and so, by RSS, to the same worker. Direct-mapped: a Call-ID pushed
// out by another is judged afresh, which at worst admits a retransmission.
class RefusedCalls {
 public:
  static constexpr unsigned kSlots = 4096;
  bool holds(std::uint64_t digest, std::uint64_t now) const {
    // Nothing refused lately: no look into the 64 KB of slots (the benchmark's new calls).
    if (now > latest_until_) return false;
    const Slot& slot = slots_[digest & (kSlots - 1)];
    return slot.digest == digest && slot.until >= now;
  }
  void remember(std::uint64_t digest, std::uint64_t until) {
    slots_[digest & (kSlots - 1)] = {digest, until};
    latest_until_ = until;
  }

 private:
  struct Slot {
    std::uint64_t digest = 0;
    std::uint64_t until = 0;
  };
  std::uint64_t latest_until_ = 0;
  Slot slots_[kSlots];
};
// Timer B of RFC 3261 (64 x T1): how long a UAC retransmits an INVITE.
inline constexpr std::uint32_t kRefusalMemory_s = 32;

// The To tag tetherd's 503 adds: 16 hex digits of the Call-ID's digest, mixed. The ACK for
// the 503 carries it back (RFC 3261 17.1.1.3), which tells that ACK apart without state.
void refusal_to_tag(std::uint64_t call_digest, char (&tag)[17]);

// Where a UDP reply goes when not back to the request's source: a SIP response to its top
// Via's maddr (RFC 3261 18.2.2).
struct ReplyElsewhere {
  parsers::IpBytes address;  // IPv4-mapped for IPv4
  bool multicast;            // to the group's MAC (RFC 1112 6.4, RFC 2464 7); else to the request's source MAC
  std::uint8_t ttl;
};
// The Ethernet address of an IPv4 or IPv6 multicast group.
parsers::MacBytes multicast_mac(const parsers::IpBytes& group);

// Frames a refusal sends, written over the request's own frame (`frame`, `room` bytes of
// buffer from its start): Ethernet (with the request's VLAN tag, if any) from `port_mac` to the
// request's source MAC, IP from the VIP back to the client (or `elsewhere`, which must be of
// the request's IP version), checksums filled in. Return the frame's length, or 0 if it does
// not fit in `room` or cannot go `elsewhere`.
std::size_t write_udp_reply(std::uint8_t* frame, std::size_t room, const parsers::ParsedFrame& request,
                            const parsers::MacBytes& port_mac, std::uint16_t destination_port,
                            std::span<const char> payload, const ReplyElsewhere* elsewhere = nullptr);
// RFC 9293 3.10.7.1, a SYN to a port that will not take it: RST+ACK, seq 0, ack = the SYN's
// sequence + 1 (+ its payload length).
std::size_t write_tcp_reset(std::uint8_t* frame, std::size_t room, const parsers::ParsedFrame& syn,
                            const parsers::MacBytes& port_mac);

}  // namespace tether::dataplane
