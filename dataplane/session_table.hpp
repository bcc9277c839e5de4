// The session table shared by all workers: SIP calls and the expectations that RTSP and FTP
// control connections create for their related flows.
//
// The flows of one session arrive on different workers (RSS hashes 5-tuples), so this table
// is shared: an rte_hash with lock-free readers (RW_CONCURRENCY_LF) and concurrent adds
// (MULTI_WRITER_ADD). The entry's routing value (backend, service, kind) is stored as the
// hash's data word, which rte_hash publishes together with the key, so a reader never sees a
// key without its value. Deadlines live in a side array indexed by the key's position and
// are refreshed by any worker with relaxed atomics; so does a SIP call's state (live, ended,
// being reopened as a new call), which makes a call's end count once.
//
// Only the control thread deletes (expiry sweep). Deleted key slots are reclaimed through
// the hash's QSBR integration: a slot is reused only after every worker has reported a
// quiescent state, which workers do once per loop, outside any burst.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/counters.hpp"
#include "dataplane/crc32c.hpp"
#include "dataplane/limits.hpp"
#include "dataplane/live_counts.hpp"
#include "parsers/packet.hpp"

struct rte_hash;
struct rte_rcu_qsbr;

namespace tether::dataplane {

enum class SessionKind : std::uint8_t {
  sip_call = 1,         // digest = Call-ID digest
  rtp_expectation = 2,  // address:port = the RTSP client's RTP or RTCP source
  ftp_expectation = 3,  // address = the FTP client, port = one of its expectation slots
  // An established flow a peer synced (state sync): address:port = the client, vip_port the
  // port it is sent to; the service gives the VIP and the protocol. Workers look it up only
  // for a packet that misses their own flow table and does not open a connection.
  synced_flow = 4,
  // An IP datagram whose first fragment was routed (dataplane/fragments.hpp), in the fragment
  // table, a SessionTable of its own: never in the session table.
  fragment = 5,
  count_
};

// 32 bytes: rte_hash compares 16/32/48/64-byte keys with vector instructions and any other
// length with a call to memcmp, and every SIP datagram is looked up here.
struct SessionKey {
  SessionKind kind;
  std::uint8_t pad0 = 0;
  std::uint16_t service;
  std::uint16_t port;
  std::uint16_t vip_port = 0;  // synced flows; 0 for the other kinds
  std::uint64_t digest;
  parsers::IpBytes address;
};
static_assert(sizeof(SessionKey) == 32);

SessionKey sip_call_key(std::uint16_t service, std::uint64_t call_id_digest);
SessionKey rtp_expectation_key(std::uint16_t service, const parsers::IpBytes& client,
                               std::uint16_t client_port);
// `slot` < kFtpExpectationsPerClient: one of the client address's outstanding expectations.
SessionKey ftp_expectation_key(std::uint16_t service, const parsers::IpBytes& client,
                               std::uint16_t slot = 0);
SessionKey synced_flow_key(std::uint16_t service, const parsers::IpBytes& client,
                           std::uint16_t client_port, std::uint16_t vip_port);
std::uint32_t session_signature(const SessionKey& key);

// Fixed, so that instances agree ("sess").
inline constexpr std::uint32_t kSessionHashSeed = 0x73657373;

// sip_call_key() written into `key`, returning session_signature(key): hashed from the 8-byte
// words it stores rather than read back, as fill_flow_key does (a load that spans narrower
// stores still in flight waits for them). Inline: every SIP datagram takes it.
inline std::uint32_t fill_sip_call_key(SessionKey& key, std::uint16_t service,
                                       std::uint64_t call_id_digest) {
  static_assert(offsetof(SessionKey, service) == 2 && offsetof(SessionKey, port) == 4 &&
                offsetof(SessionKey, digest) == 8 && offsetof(SessionKey, address) == 16);
  const std::uint64_t words[sizeof(SessionKey) / 8] = {
      // kind, pad0, service; port and vip_port 0, in the key's little-endian layout
      static_cast<std::uint64_t>(SessionKind::sip_call) | std::uint64_t{service} << 16,
      call_id_digest, 0, 0};
  auto* out = reinterpret_cast<unsigned char*>(&key);
  std::uint64_t signature = kSessionHashSeed;
  for (unsigned i = 0; i < sizeof(SessionKey) / 8; ++i) {
    std::memcpy(out + 8 * i, &words[i], 8);
    signature = crc32c_8byte(words[i], signature);
  }
  return static_cast<std::uint32_t>(signature);
}

struct SessionRoute {
  std::uint16_t backend;
  std::uint16_t service;
};

inline constexpr std::size_t kSessionKinds = static_cast<std::size_t>(SessionKind::count_);

const char* to_string(SessionKind kind);

// Outstanding FTP data expectations one client address may hold per service: one per PASV
// or EPSV not yet followed by its data connection. Clients behind one NAT address share them.
inline constexpr unsigned kFtpExpectationsPerClient = 16;

enum class FtpExpectationAdd : std::uint8_t {
  added,
  client_full,  // the client address has kFtpExpectationsPerClient outstanding already
  table_full,
};

// One entry as the control thread reads it.
struct SessionEntry {
  SessionKey key;
  SessionRoute route;
  std::uint64_t deadline;
  bool ended = false;  // SIP calls: ended by BYE or CANCEL, lingering
  bool holds_call = true;  // SIP: counted as a call (SessionTable::holds_call)
};

// What the control thread's sweep did, per kind: entries it deleted, but for FTP
// expectations only those never claimed (a used slot is deleted without counting).
struct SweepResult {
  std::uint64_t expired[kSessionKinds] = {};
};

class SessionTable {
 public:
  // `readers`: how many workers report quiescent states (thread ids 0..readers-1).
  SessionTable(const char* name, std::uint32_t capacity, unsigned readers, int socket);
  ~SessionTable();
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // --- workers ---
  // The route and position of a live entry (deadline not passed), or a negative position.
  std::int32_t find(const SessionKey& key, std::uint32_t signature, std::uint64_t now,
                    SessionRoute& route) const;
  // Brings the buckets, keys and slots of these keys into the cache, so that the find()
  // and add() calls that follow do not each wait for memory in turn. n <= 64.
  void warm(const SessionKey* const* keys, const std::uint32_t* signatures, unsigned n) const;
  // How add() counts a SIP call on its backend's live_calls (what least-sessions ranks by
  // and max_sessions holds against).
  enum class CallCount : std::uint8_t {
    held,      // a session: counted (an entry already present keeps how it was counted)
    reserved,  // a session whose count the caller reserved with live_calls().try_add(): add()
               // keeps the reservation as the count, or gives it back if it counts nothing
    not_held,  // a transaction outside any call (OPTIONS, REGISTER): in the table, not counted
               // (an entry already present keeps how it was counted)
  };
  // Adds or replaces; returns the position or a negative errno (-ENOSPC when full).
  // `created` (if given) is true for exactly one of several workers adding the same new key
  // at once, so a session is counted once.
  std::int32_t add(const SessionKey& key, std::uint32_t signature, SessionRoute route,
                   std::uint64_t deadline, bool* created = nullptr, CallCount call_count = CallCount::held);
  // Adds the key unless it is present: a present key (live, or expired and not swept yet)
  // keeps its route and deadline. `created` is true for exactly one of several callers adding
  // the same absent key at once; that caller's `deadline` is stored (0: none yet, the sweep
  // leaves the entry alone until the owner sets one with refresh()). rte_hash has no
  // add-if-absent, so the callers that race on one absent key each write their route into
  // it: pass the same route for the same key, or keep the route elsewhere (as the FTP
  // expectation slots do, in their tickets). Returns the position or a negative errno.
  std::int32_t add_if_absent(const SessionKey& key, std::uint32_t signature, SessionRoute route,
                             std::uint64_t deadline, bool& created);
  void refresh(std::int32_t position, std::uint64_t deadline);
  // Moves a live entry's deadline on to `deadline`; an ended entry (its deadline passed, as
  // TEARDOWN or the end of the control connection makes it) stays ended, whatever a packet
  // that looked it up a moment earlier does. Writes only when the deadline has aged by a
  // sixteenth of the extension: a media stream does not write a shared line per packet.
  void extend(std::int32_t position, std::uint64_t now, std::uint64_t deadline);
  // Sets the deadline to `deadline` if that is sooner (a BYE's linger, a TEARDOWN).
  void shorten(std::int32_t position, std::uint64_t deadline);
  // For one-shot entries: true for exactly one caller, which then owns the entry's use.
  bool claim(std::int32_t position, std::uint64_t now);

  // --- SIP calls (workers) ---
  // How a Call-ID's entry stands.
  struct CallFound {
    SessionRoute route{};
    bool ended = false;    // a BYE or CANCEL ended the call: it lingers for late messages
    bool expired = false;  // its deadline passed; the sweep has not removed it yet
    std::uint16_t opener = 0;  // what set_opener() stored
  };
  // The position of the call's entry (or a negative one), as find() but with expired entries
  // too: a message under the Call-ID of a call that is over starts a new call, which the
  // worker must count and schedule afresh. Reads only the slot find() reads.
  std::int32_t find_call(const SessionKey& key, std::uint32_t signature, std::uint64_t now,
                         CallFound& found) const;
  // Ends the call (a BYE or CANCEL) and shortens its deadline to `deadline`, its linger. True
  // for the first ender only, so a call's end is counted once: BYE retransmissions, a BYE from
  // each side or a BYE after CANCEL return false.
  bool end_call(std::int32_t position, std::uint64_t deadline);
  // A new call under the Call-ID of one that is over (ended, or expired): true for exactly one
  // caller, which then schedules the new call, add()s it and calls reopened(). False when
  // another worker reopens it, or did so since the caller's find_call().
  bool reopen_call(std::int32_t position, std::uint64_t now);
  void reopened(std::int32_t position);
  // 16 bits the worker keeps with a new call (the digest of its opening INVITE's From tag), to
  // tell that INVITE's retransmissions from a new call's INVITE once the call ended.
  void set_opener(std::int32_t position, std::uint16_t opener) {
    slots_[position].opener.store(opener, std::memory_order_relaxed);
  }
  // Whether the SIP entry at `position` is counted as a call on its backend (live_calls):
  // false for a transaction outside any call (CallCount::not_held), as it was counted. An
  // entry another worker added a moment ago and has not counted yet reads as a call.
  bool holds_call(std::int32_t position) const {
    return (slots_[position].counted_on.load(std::memory_order_relaxed) & kNotHeld) == 0;
  }
  // Fragment table entries (dataplane/fragments.hpp) count the datagram's fragments in the
  // field a SIP call keeps its opener in: one more, and the count so far. Starts at 0: the
  // sweep clears it when it deletes an entry.
  std::uint16_t count_fragment(std::int32_t position) {
    return static_cast<std::uint16_t>(slots_[position].opener.fetch_add(1, std::memory_order_relaxed) + 1);
  }
  void restart_fragment_count(std::int32_t position) {
    slots_[position].opener.store(0, std::memory_order_relaxed);
  }

  // FTP data expectations of a client address, several at once (clients behind one NAT
  // address, or one client's parallel transfers): each PASV/EPSV takes one of the address's
  // kFtpExpectationsPerClient slots, and data connections claim them oldest first. The route
  // of a slot lives in its ticket (backend, state, creation sequence), which one
  // compare-and-swap moves from state to state, so that two PASVs adding at once on two
  // workers never take the same slot and two data connections never claim the same
  // expectation. A slot whose expectation was used or expired is reused in place.
  FtpExpectationAdd add_ftp_expectation(std::uint16_t service, const parsers::IpBytes& client,
                                        std::uint16_t backend, std::uint64_t now,
                                        std::uint64_t deadline);
  // Claims the client address's oldest outstanding expectation: true, with its route, for
  // exactly one caller per expectation.
  bool claim_ftp_expectation(std::uint16_t service, const parsers::IpBytes& client,
                             std::uint64_t now, SessionRoute& route);

  // Live SIP calls per backend, for the least-sessions scheduler: add() counts a new call
  // (and moves it when a re-add changes its backend), the sweep uncounts it when it removes
  // the entry.
  const LiveCounts& live_calls() const { return live_calls_; }
  LiveCounts& live_calls() { return live_calls_; }  // admission's reservations (CallCount::reserved)
  std::int64_t live_calls(std::uint16_t backend) const {
    return live_calls_.at(backend);
  }

  // Live RTSP or FTP control connections per backend (admission's max_sessions), one count
  // per protocol: a worker counts one when it starts inspecting a connection and uncounts it
  // when the connection ends or expires. Kept here, beside the calls, as the sessions each
  // backend holds.
  enum class ControlProtocol : std::uint8_t { rtsp, ftp };
  LiveCounts& control_connections(ControlProtocol protocol) {
    return control_connections_[static_cast<std::size_t>(protocol)];
  }
  const LiveCounts& control_connections(ControlProtocol protocol) const {
    return control_connections_[static_cast<std::size_t>(protocol)];
  }

  // Called on the reader's own thread. `counters` (if given) take this thread's contention
  // figures for the table: its adds (one in kTimedAddEvery timed), and the compare-and-swaps
  // on shared entries it lost to another thread (docs/performance.md, "More than one core").
  void register_reader(unsigned reader, WorkerCounters* counters = nullptr);
  void quiescent(unsigned reader) const;
  void unregister_reader(unsigned reader);
  // One add in this many is timed with the TSC (two reads at ~10 ns each in a VM); a timed
  // add of more cycles than kPreemptedAdd (tens of microseconds) is left out.
  static constexpr std::uint64_t kTimedAddEvery = 16;
  static constexpr std::uint64_t kPreemptedAdd = 100'000;

  // --- control thread ---
  // Deletes expired entries among the next `budget` slots.
  SweepResult sweep(std::uint64_t now, std::uint32_t budget);
  // Calls visit(const SessionEntry&) for every live entry (deadline not passed), in slot
  // order. Entries the workers add meanwhile may or may not be seen.
  template <typename Visit>
  void for_each_live(std::uint64_t now, Visit&& visit) const {
    SessionEntry entry;
    for (std::uint32_t position = 0; position < slot_count_; ++position)
      if (live_entry(position, now, entry)) visit(static_cast<const SessionEntry&>(entry));
  }
  // The same over the `count` slots from `from`, while visit returns true: the position to go
  // on from, slot_count() once the walk passed the last slot. For walks in slices.
  template <typename Visit>
  std::uint32_t for_each_live_in(std::uint32_t from, std::uint32_t count, std::uint64_t now,
                                 Visit&& visit) const {
    SessionEntry entry;
    const std::uint32_t end = from + std::min(count, slot_count_ - std::min(from, slot_count_));
    std::uint32_t position = from;
    while (position < end)
      if (live_entry(position++, now, entry) && !visit(static_cast<const SessionEntry&>(entry))) break;
    return position;
  }
  std::uint32_t slot_count() const { return slot_count_; }
  std::uint32_t size() const;
  std::uint32_t capacity() const { return capacity_; }
  // Bytes the table took from the DPDK heaps: buckets, keys, free-slot rings and caches,
  // RCU state and the slot side array.
  std::uint64_t memory_bytes() const { return memory_bytes_; }

 private:
  // 16 bytes: the SIP fields fill what was padding.
  struct alignas(16) Slot {
    std::atomic<std::uint64_t> deadline;
    std::atomic<std::uint8_t> claimed;
    std::atomic<std::uint8_t> call;  // SIP calls: kCallLive, kCallEnded or kCallReopening
    std::atomic<std::uint16_t> opener;  // SIP calls: see set_opener()
    std::atomic<std::uint32_t> counted_on;  // counted_value() of the entry's count, or 0
  };
  // `counted_on` for an entry on `backend`: backend + 1, with kNotHeld for a SIP entry that
  // holds no call (CallCount::not_held): the entry counts, its backend's live_calls do not.
  static constexpr std::uint32_t kNotHeld = 1u << 16;
  static std::uint32_t counted_value(std::uint16_t backend, bool held) {
    return (static_cast<std::uint32_t>(backend) + 1) | (held ? 0 : kNotHeld);
  }
  static_assert(sizeof(Slot) == 16);

  static constexpr std::uint8_t kCallLive = 0;
  static constexpr std::uint8_t kCallEnded = 1;
  static constexpr std::uint8_t kCallReopening = 2;

  // The entry at `position` if it has a deadline and a key: false for a free slot. Only the
  // control thread deletes, so a key it finds stays put while it reads it.
  bool entry_at(std::uint32_t position, SessionEntry& entry) const;
  bool live_entry(std::uint32_t position, std::uint64_t now, SessionEntry& entry) const;
  // `counted`: a counted_value(). `reserved`: the call's live count was reserved already.
  void count(SessionKind kind, std::uint32_t counted, bool entry, bool reserved = false);
  void uncount(SessionKind kind, std::uint32_t counted, bool entry);
  // FTP slots: takes the slot at `position` for a new expectation if it is free to take.
  // The keys of a client address's FTP expectation slots and their positions (-ENOENT
  // where a slot is not in the table).
  struct FtpSlots {
    SessionKey keys[kFtpExpectationsPerClient];
    std::uint32_t signatures[kFtpExpectationsPerClient];
    std::int32_t positions[kFtpExpectationsPerClient];
  };
  void find_ftp_slots(std::uint16_t service, const parsers::IpBytes& client, FtpSlots& slots) const;
  bool take_ftp_slot(const SessionKey& key, std::uint32_t signature, std::int32_t position,
                     bool created, std::uint64_t now, std::uint64_t ticket, std::uint64_t deadline);
  // The sweep's side of a slot: true if the expired slot at `position` may be deleted (then
  // `unused` says whether its expectation expired unclaimed).
  bool retire_ftp_slot(std::int32_t position, std::uint64_t now, bool& unused);

  // The calling thread's counters, or null for a thread that registered none (the control
  // thread, a worker in the fragment table).
  WorkerCounters* contention() const;
  void lost_cas() const {
    if (WorkerCounters* counters = contention()) ++counters->session_table_cas_failed;
  }

  rte_hash* hash_ = nullptr;
  rte_rcu_qsbr* rcu_ = nullptr;
  unsigned readers_ = 0;
  std::unique_ptr<WorkerCounters*[]> reader_counters_;  // by reader
  Slot* slots_ = nullptr;
  // By position, for FTP expectation slots: backend, state and creation sequence in one word.
  std::atomic<std::uint64_t>* ftp_tickets_ = nullptr;
  std::uint32_t slot_count_ = 0;
  std::uint32_t capacity_;
  std::uint32_t sweep_cursor_ = 0;
  std::uint64_t memory_bytes_ = 0;
  std::atomic<std::int64_t> entries_{0};
  LiveCounts live_calls_;
  LiveCounts control_connections_[2];
  // Creation order of FTP expectations, across workers: written only by PASV/EPSV.
  alignas(64) std::atomic<std::uint64_t> ftp_sequence_{1};
};

}  // namespace tether::dataplane
