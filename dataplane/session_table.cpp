#include "dataplane/session_table.hpp"

#include "dataplane/dpdk_objects.hpp"
#include "dataplane/heap.hpp"

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tether::dataplane {
namespace {

// The reader id the calling thread registered (with any table: a worker registers the same id
// with each), or none.
constexpr unsigned kNoReader = ~0u;
thread_local unsigned this_thread_reader = kNoReader;

// The data word: backend in bits 0-15, service in 16-31.
std::uintptr_t pack(SessionRoute route) {
  return static_cast<std::uintptr_t>(route.backend) |
         static_cast<std::uintptr_t>(route.service) << 16;
}
SessionRoute unpack(const void* data) {
  const auto word = reinterpret_cast<std::uintptr_t>(data);
  return {static_cast<std::uint16_t>(word), static_cast<std::uint16_t>(word >> 16)};
}

// An FTP expectation slot's ticket: backend in bits 0-15, state in 16-17, the creation
// sequence from bit 18 (46 bits: no wrap in practice). A position never used by a slot, or
// given back by the sweep, holds 0: state none.
enum class FtpSlotState : std::uint64_t { none = 0, filling = 1, outstanding = 2, used = 3 };
constexpr unsigned kFtpStateShift = 16;
constexpr unsigned kFtpSequenceShift = 18;
constexpr std::uint64_t kFtpStateMask = std::uint64_t{3} << kFtpStateShift;
// Set by the sweep on the slot it is deleting, so that no PASV takes it meanwhile; reset to
// none once the key is gone. State none with a sequence no expectation reaches.
constexpr std::uint64_t kFtpSlotDeleting = ~std::uint64_t{0} << kFtpSequenceShift;

std::uint64_t ftp_ticket(std::uint64_t sequence, FtpSlotState state, std::uint16_t backend) {
  return sequence << kFtpSequenceShift | static_cast<std::uint64_t>(state) << kFtpStateShift | backend;
}
FtpSlotState ftp_state(std::uint64_t ticket) {
  return static_cast<FtpSlotState>((ticket & kFtpStateMask) >> kFtpStateShift);
}
std::uint64_t ftp_with_state(std::uint64_t ticket, FtpSlotState state) {
  return (ticket & ~kFtpStateMask) | static_cast<std::uint64_t>(state) << kFtpStateShift;
}
std::uint64_t ftp_sequence(std::uint64_t ticket) { return ticket >> kFtpSequenceShift; }
std::uint16_t ftp_backend(std::uint64_t ticket) { return static_cast<std::uint16_t>(ticket); }

SessionKey blank_key(SessionKind kind, std::uint16_t service) {
  SessionKey key{};  // no implicit padding (static_assert on the size): all bytes defined
  key.kind = kind;
  key.service = service;
  return key;
}

// An expectation of one client address: its port, or its FTP slot, in `port`.
SessionKey client_key(SessionKind kind, std::uint16_t service, const parsers::IpBytes& client,
                      std::uint16_t port) {
  SessionKey key = blank_key(kind, service);
  key.address = client;
  key.port = port;
  return key;
}

}  // namespace

SessionKey sip_call_key(std::uint16_t service, std::uint64_t call_id_digest) {
  SessionKey key = blank_key(SessionKind::sip_call, service);
  key.digest = call_id_digest;
  return key;
}

SessionKey rtp_expectation_key(std::uint16_t service, const parsers::IpBytes& client,
                               std::uint16_t client_port) {
  return client_key(SessionKind::rtp_expectation, service, client, client_port);
}

SessionKey ftp_expectation_key(std::uint16_t service, const parsers::IpBytes& client,
                               std::uint16_t slot) {
  return client_key(SessionKind::ftp_expectation, service, client, slot);
}

SessionKey synced_flow_key(std::uint16_t service, const parsers::IpBytes& client,
                           std::uint16_t client_port, std::uint16_t vip_port) {
  SessionKey key = client_key(SessionKind::synced_flow, service, client, client_port);
  key.vip_port = vip_port;
  return key;
}

std::uint32_t session_signature(const SessionKey& key) {
  return rte_hash_crc(&key, sizeof key, kSessionHashSeed);
}

SessionTable::SessionTable(const char* name, std::uint32_t capacity, unsigned readers, int socket)
    : readers_(readers), reader_counters_(new WorkerCounters*[readers]()), capacity_(capacity) {
  const std::uint64_t heap_before = heap_bytes_allocated();
  hash_ = make_hash("session table", name, capacity, sizeof(SessionKey), rte_hash_crc,
                    kSessionHashSeed, socket,
                    RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD);

  const std::size_t rcu_size = rte_rcu_qsbr_get_memsize(readers);
  rcu_ = static_cast<rte_rcu_qsbr*>(rte_zmalloc_socket(name, rcu_size, RTE_CACHE_LINE_SIZE, socket));
  if (rcu_ == nullptr || rte_rcu_qsbr_init(rcu_, readers) != 0) {
    rte_free(rcu_);
    rte_hash_free(hash_);
    throw std::runtime_error(std::string("cannot set up RCU for ") + name);
  }
  rte_hash_rcu_config rcu_config{};
  rcu_config.v = rcu_;
  rcu_config.mode = RTE_HASH_QSBR_MODE_DQ;
  if (rte_hash_rcu_qsbr_add(hash_, &rcu_config) != 0) {
    rte_free(rcu_);
    rte_hash_free(hash_);
    throw std::runtime_error(std::string("cannot attach RCU to ") + name + ": " +
                             rte_strerror(rte_errno));
  }

  slot_count_ = static_cast<std::uint32_t>(rte_hash_max_key_id(hash_)) + 1;
  slots_ = static_cast<Slot*>(rte_zmalloc_socket(name, sizeof(Slot) * slot_count_,
                                                 RTE_CACHE_LINE_SIZE, socket));
  if (slots_ == nullptr) {
    rte_hash_free(hash_);
    rte_free(rcu_);
    throw std::runtime_error(std::string("cannot allocate session slots for ") + name);
  }
  ftp_tickets_ = static_cast<std::atomic<std::uint64_t>*>(rte_zmalloc_socket(
      name, sizeof(std::atomic<std::uint64_t>) * slot_count_, RTE_CACHE_LINE_SIZE, socket));
  if (ftp_tickets_ == nullptr) {
    rte_hash_free(hash_);
    rte_free(rcu_);
    rte_free(slots_);
    throw std::runtime_error(std::string("cannot allocate FTP expectation slots for ") + name);
  }
  memory_bytes_ = heap_bytes_allocated() - heap_before;
}

SessionTable::~SessionTable() {
  rte_hash_free(hash_);  // drains the RCU defer queue first
  rte_free(rcu_);
  rte_free(slots_);
  rte_free(ftp_tickets_);
}

std::int32_t SessionTable::find(const SessionKey& key, std::uint32_t signature,
                                std::uint64_t now, SessionRoute& route) const {
  void* data;
  const std::int32_t position = rte_hash_lookup_with_hash_data(hash_, &key, signature, &data);
  if (position < 0) return position;
  const std::uint64_t deadline = slots_[position].deadline.load(std::memory_order_relaxed);
  // 0: added a moment ago by another worker that has not stored the deadline yet.
  if (deadline != 0 && deadline < now) return -ENOENT;
  route = unpack(data);
  return position;
}

void SessionTable::warm(const SessionKey* const* keys, const std::uint32_t* signatures,
                        unsigned n) const {
  std::int32_t positions[RTE_HASH_LOOKUP_BULK_MAX];
  if (n == 0 || n > RTE_HASH_LOOKUP_BULK_MAX ||
      rte_hash_lookup_with_hash_bulk(hash_, reinterpret_cast<const void**>(const_cast<const SessionKey**>(keys)),
                                     const_cast<hash_sig_t*>(signatures), n, positions) < 0)
    return;  // only a prefetch: find() and add() do the real work anyway
  for (unsigned i = 0; i < n; ++i)
    if (positions[i] >= 0) __builtin_prefetch(&slots_[positions[i]]);
}

std::int32_t SessionTable::add(const SessionKey& key, std::uint32_t signature, SessionRoute route,
                               std::uint64_t deadline, bool* created, CallCount call_count) {
  if (created != nullptr) *created = false;
  const bool reserved = call_count == CallCount::reserved;
  // A reservation this add does not turn into the entry's count goes back.
  const auto give_back = [&] {
    if (reserved) live_calls_.remove(route.backend);
  };
  WorkerCounters* counters = contention();
  const bool timed = counters != nullptr && counters->session_table_adds.read() % kTimedAddEvery == 0;
  const std::uint64_t started = timed ? rte_rdtsc() : 0;
  const int rc = rte_hash_add_key_with_hash_data(hash_, &key, signature,
                                                 reinterpret_cast<void*>(pack(route)));
  if (rc < 0) {
    give_back();
    return rc;
  }
  const std::int32_t position = rte_hash_lookup_with_hash(hash_, &key, signature);
  if (counters != nullptr) {
    // Longer than kPreemptedAdd: the thread lost its CPU inside the add (a shared machine),
    // which says nothing about the table.
    if (const std::uint64_t spent = timed ? rte_rdtsc() - started : 0; timed && spent < kPreemptedAdd) {
      counters->session_table_add_cycles += spent;
      ++counters->session_table_adds_timed;
    }
    ++counters->session_table_adds;
  }
  if (position < 0) {  // deleted by the sweep in between
    give_back();
    return position;
  }
  Slot& slot = slots_[position];
  slot.claimed.store(0, std::memory_order_relaxed);
  slot.deadline.store(deadline, std::memory_order_relaxed);

  // Count the entry on its backend. `counted_on` (counted_value(), or 0) says which backend
  // holds the entry's count and whether it holds a call; whoever changes it adjusts the
  // counts, so adds of several workers and the sweep's delete serialise on it. This worker is
  // inside its RCU critical section, so the slot cannot be reused under it even if the sweep
  // deletes the key. A present entry keeps whether it holds a call, unless a reservation
  // makes it one.
  std::uint32_t current = slot.counted_on.load(std::memory_order_acquire);
  std::uint32_t mine;
  for (;;) {
    const bool held = reserved || (current != 0 ? (current & kNotHeld) == 0 : call_count == CallCount::held);
    mine = counted_value(route.backend, held);
    if (current == mine) {  // counted on this backend already
      give_back();
      return position;
    }
    if (!slot.counted_on.compare_exchange_weak(current, mine, std::memory_order_acq_rel)) {
      lost_cas();
      continue;
    }
    if (current != 0) {  // moved from another backend (an expired call rescheduled), or now held
      uncount(key.kind, current, false);
      count(key.kind, mine, false, reserved);
      return position;
    }
    break;  // this add created the entry
  }
  if (rte_hash_lookup_with_hash(hash_, &key, signature) == position) {
    slot.call.store(kCallLive, std::memory_order_relaxed);  // a new call has not ended
    count(key.kind, mine, true, reserved);
    if (created != nullptr) *created = true;
    return position;
  }
  // The sweep deleted the key after this add. If it has not taken the count yet, take it
  // back: the entry never counted. If it has, it uncounted this backend and counted the
  // expiry, so this add created the entry: count it to balance.
  if (slot.counted_on.exchange(0, std::memory_order_acq_rel) == 0) {
    slot.call.store(kCallLive, std::memory_order_relaxed);
    count(key.kind, mine, true, reserved);
    if (created != nullptr) *created = true;
  } else {
    give_back();
  }
  return -ENOENT;
}

std::int32_t SessionTable::add_if_absent(const SessionKey& key, std::uint32_t signature,
                                         SessionRoute route, std::uint64_t deadline,
                                         bool& created) {
  created = false;
  const std::int32_t found = rte_hash_lookup_with_hash(hash_, &key, signature);
  if (found >= 0) return found;
  const int rc = rte_hash_add_key_with_hash_data(hash_, &key, signature,
                                                 reinterpret_cast<void*>(pack(route)));
  if (rc < 0) return rc;
  if (WorkerCounters* counters = contention()) ++counters->session_table_adds;
  const std::int32_t position = rte_hash_lookup_with_hash(hash_, &key, signature);
  if (position < 0) return position;
  // Of the callers that found the key absent and added it, the one that moves `counted_on`
  // off 0 created the entry (the sweep puts it back to 0 only once the key is deleted).
  Slot& slot = slots_[position];
  std::uint32_t uncounted = 0;
  const std::uint32_t mine = counted_value(route.backend, true);
  if (!slot.counted_on.compare_exchange_strong(uncounted, mine, std::memory_order_acq_rel)) {
    lost_cas();  // another caller created it
    return position;
  }
  slot.claimed.store(0, std::memory_order_relaxed);
  slot.deadline.store(deadline, std::memory_order_relaxed);
  if (rte_hash_lookup_with_hash(hash_, &key, signature) == position) {
    count(key.kind, mine, true);
    created = true;
    return position;
  }
  // Deleted by the sweep meanwhile (an entry that another caller had added and the sweep
  // expired): balance the count as add() does.
  if (slot.counted_on.exchange(0, std::memory_order_acq_rel) == 0) {
    count(key.kind, mine, true);
    created = true;
  }
  return -ENOENT;
}

void SessionTable::count(SessionKind kind, std::uint32_t counted, bool entry, bool reserved) {
  if (entry) entries_.fetch_add(1, std::memory_order_relaxed);
  if (kind == SessionKind::sip_call && (counted & kNotHeld) == 0 && !reserved)
    live_calls_.add(static_cast<std::uint16_t>((counted & (kNotHeld - 1)) - 1));
}

void SessionTable::uncount(SessionKind kind, std::uint32_t counted, bool entry) {
  if (entry) entries_.fetch_sub(1, std::memory_order_relaxed);
  if (kind == SessionKind::sip_call && (counted & kNotHeld) == 0)
    live_calls_.remove(static_cast<std::uint16_t>((counted & (kNotHeld - 1)) - 1));
}

void SessionTable::refresh(std::int32_t position, std::uint64_t deadline) {
  slots_[position].deadline.store(deadline, std::memory_order_relaxed);
}

void SessionTable::extend(std::int32_t position, std::uint64_t now, std::uint64_t deadline) {
  auto& slot = slots_[position].deadline;
  const std::uint64_t slack = deadline > now ? (deadline - now) / 16 : 0;
  std::uint64_t current = slot.load(std::memory_order_relaxed);
  // 0: being added by another worker, which stores its own deadline next.
  while (current != 0 && current >= now && current + slack < deadline &&
         !slot.compare_exchange_weak(current, deadline, std::memory_order_relaxed)) {
    lost_cas();
  }
}

void SessionTable::shorten(std::int32_t position, std::uint64_t deadline) {
  auto& slot = slots_[position].deadline;
  std::uint64_t current = slot.load(std::memory_order_relaxed);
  while ((current == 0 || deadline < current) &&
         !slot.compare_exchange_weak(current, deadline, std::memory_order_relaxed)) {
    lost_cas();
  }
}

bool SessionTable::claim(std::int32_t position, std::uint64_t now) {
  if (slots_[position].claimed.exchange(1, std::memory_order_acq_rel) != 0) return false;
  shorten(position, now);  // used: let the sweep remove it
  return true;
}

std::int32_t SessionTable::find_call(const SessionKey& key, std::uint32_t signature,
                                     std::uint64_t now, CallFound& found) const {
  void* data;
  const std::int32_t position = rte_hash_lookup_with_hash_data(hash_, &key, signature, &data);
  if (position < 0) return position;
  const Slot& slot = slots_[position];
  const std::uint64_t deadline = slot.deadline.load(std::memory_order_relaxed);
  found.route = unpack(data);
  // 0: added a moment ago by another worker that has not stored the deadline yet.
  found.expired = deadline != 0 && deadline < now;
  found.ended = slot.call.load(std::memory_order_relaxed) != kCallLive;
  found.opener = slot.opener.load(std::memory_order_relaxed);
  return position;
}

bool SessionTable::end_call(std::int32_t position, std::uint64_t deadline) {
  std::uint8_t live = kCallLive;
  // Only a live call ends: an ended one ended already, one being reopened is a new call whose
  // first message is not this BYE.
  if (!slots_[position].call.compare_exchange_strong(live, kCallEnded, std::memory_order_acq_rel))
    return false;
  shorten(position, deadline);
  return true;
}

bool SessionTable::reopen_call(std::int32_t position, std::uint64_t now) {
  Slot& slot = slots_[position];
  std::uint8_t state = slot.call.load(std::memory_order_acquire);
  if (state == kCallReopening ||
      !slot.call.compare_exchange_strong(state, kCallReopening, std::memory_order_acq_rel))
    return false;
  // Holding the entry, nobody else reopens or ends it. Is its call still over? A worker that
  // reopened it since the caller's find_call() has stored a new deadline.
  const std::uint64_t deadline = slot.deadline.load(std::memory_order_relaxed);
  if (state == kCallEnded || (deadline != 0 && deadline < now)) return true;
  slot.call.store(state, std::memory_order_release);
  return false;
}

void SessionTable::reopened(std::int32_t position) {
  slots_[position].call.store(kCallLive, std::memory_order_release);
}

void SessionTable::find_ftp_slots(std::uint16_t service, const parsers::IpBytes& client,
                                  FtpSlots& slots) const {
  const void* key_list[kFtpExpectationsPerClient];
  for (unsigned i = 0; i < kFtpExpectationsPerClient; ++i) {
    slots.keys[i] = ftp_expectation_key(service, client, static_cast<std::uint16_t>(i));
    key_list[i] = &slots.keys[i];
    slots.signatures[i] = session_signature(slots.keys[i]);
  }
  if (rte_hash_lookup_with_hash_bulk(hash_, key_list, slots.signatures, kFtpExpectationsPerClient,
                                     slots.positions) < 0)
    std::fill(std::begin(slots.positions), std::end(slots.positions), -ENOENT);
}

FtpExpectationAdd SessionTable::add_ftp_expectation(std::uint16_t service,
                                                    const parsers::IpBytes& client,
                                                    std::uint16_t backend, std::uint64_t now,
                                                    std::uint64_t deadline) {
  FtpSlots slots;
  find_ftp_slots(service, client, slots);
  const auto& [keys, signatures, positions] = slots;
  // The sequence orders the client's expectations for the data connections that claim them.
  const std::uint64_t ticket =
      ftp_ticket(ftp_sequence_.fetch_add(1, std::memory_order_relaxed), FtpSlotState::filling, backend);
  // A slot in the table whose expectation was used or expired first: no add, no delete.
  for (unsigned i = 0; i < kFtpExpectationsPerClient; ++i)
    if (positions[i] >= 0 &&
        take_ftp_slot(keys[i], signatures[i], positions[i], false, now, ticket, deadline))
      return FtpExpectationAdd::added;
  bool table_full = false;
  for (unsigned i = 0; i < kFtpExpectationsPerClient; ++i) {
    if (positions[i] >= 0) continue;
    bool created = false;
    const std::int32_t position =
        add_if_absent(keys[i], signatures[i], {backend, service}, 0, created);
    if (position < 0) {
      table_full |= position == -ENOSPC;
      continue;
    }
    if (take_ftp_slot(keys[i], signatures[i], position, created, now, ticket, deadline))
      return FtpExpectationAdd::added;
  }
  return table_full ? FtpExpectationAdd::table_full : FtpExpectationAdd::client_full;
}

bool SessionTable::take_ftp_slot(const SessionKey& key, std::uint32_t signature,
                                 std::int32_t position, bool created, std::uint64_t now,
                                 std::uint64_t ticket, std::uint64_t deadline) {
  std::atomic<std::uint64_t>& slot_ticket = ftp_tickets_[position];
  std::uint64_t current = slot_ticket.load(std::memory_order_acquire);
  for (;;) {
    bool free;
    if (current == kFtpSlotDeleting) {
      // The sweep is deleting this key; or, for the key this caller just created, the sweep
      // deleted the key that held the position before and has yet to reset its ticket.
      free = created;
    } else {
      switch (ftp_state(current)) {
        case FtpSlotState::none: free = true; break;  // new, not filled yet
        case FtpSlotState::used: free = true; break;
        case FtpSlotState::outstanding: {
          // Read after the ticket: a deadline at least as new as the ticket's.
          const std::uint64_t expires = slots_[position].deadline.load(std::memory_order_relaxed);
          free = expires != 0 && expires < now;
          break;
        }
        case FtpSlotState::filling: free = false; break;
      }
    }
    if (!free) return false;
    if (slot_ticket.compare_exchange_weak(current, ticket, std::memory_order_acq_rel,
                                          std::memory_order_acquire))
      break;
  }
  // Filling: the sweep leaves the slot alone and nobody else takes it.
  slots_[position].deadline.store(deadline, std::memory_order_relaxed);
  // A slot found in state none may belong to a key the sweep deleted since it was looked
  // up (it resets a deleted slot to none): give the position back rather than publish an
  // expectation nobody can find.
  if (rte_hash_lookup_with_hash(hash_, &key, signature) != position) {
    slots_[position].deadline.store(0, std::memory_order_relaxed);
    slot_ticket.store(0, std::memory_order_release);
    return false;
  }
  slot_ticket.store(ftp_with_state(ticket, FtpSlotState::outstanding), std::memory_order_release);
  return true;
}

bool SessionTable::claim_ftp_expectation(std::uint16_t service, const parsers::IpBytes& client,
                                         std::uint64_t now, SessionRoute& route) {
  FtpSlots slots;
  find_ftp_slots(service, client, slots);
  const std::int32_t (&positions)[kFtpExpectationsPerClient] = slots.positions;
  // The oldest outstanding one; a failed claim means another data connection took it (or a
  // PASV refilled an expired slot): look again, a bounded number of times.
  for (unsigned attempt = 0; attempt <= kFtpExpectationsPerClient; ++attempt) {
    std::int32_t oldest = -1;
    std::uint64_t oldest_ticket = 0;
    for (std::int32_t position : positions) {
      if (position < 0) continue;
      const std::uint64_t ticket = ftp_tickets_[position].load(std::memory_order_acquire);
      if (ftp_state(ticket) != FtpSlotState::outstanding) continue;
      const std::uint64_t expires = slots_[position].deadline.load(std::memory_order_relaxed);
      if (expires < now) continue;
      if (oldest < 0 || ftp_sequence(ticket) < ftp_sequence(oldest_ticket)) {
        oldest = position;
        oldest_ticket = ticket;
      }
    }
    if (oldest < 0) return false;
    if (ftp_tickets_[oldest].compare_exchange_strong(
            oldest_ticket, ftp_with_state(oldest_ticket, FtpSlotState::used),
            std::memory_order_acq_rel)) {
      // The slot keeps its deadline: a later PASV reuses it in place, or the sweep deletes it.
      route = {ftp_backend(oldest_ticket), service};
      return true;
    }
  }
  return false;
}

bool SessionTable::retire_ftp_slot(std::int32_t position, std::uint64_t now, bool& unused) {
  std::atomic<std::uint64_t>& slot_ticket = ftp_tickets_[position];
  std::uint64_t current = slot_ticket.load(std::memory_order_acquire);
  if (current == kFtpSlotDeleting || ftp_state(current) == FtpSlotState::filling) return false;
  // Again under this ticket: a PASV may have refilled the slot since the sweep looked.
  const std::uint64_t deadline = slots_[position].deadline.load(std::memory_order_relaxed);
  if (deadline == 0 || deadline >= now) return false;
  if (!slot_ticket.compare_exchange_strong(current, kFtpSlotDeleting, std::memory_order_acq_rel))
    return false;  // claimed or refilled meanwhile: the next round decides
  unused = ftp_state(current) != FtpSlotState::used;
  return true;
}

void SessionTable::register_reader(unsigned reader, WorkerCounters* counters) {
  rte_rcu_qsbr_thread_register(rcu_, reader);
  rte_rcu_qsbr_thread_online(rcu_, reader);
  if (reader < readers_) reader_counters_[reader] = counters;
  this_thread_reader = reader;
}

WorkerCounters* SessionTable::contention() const {
  const unsigned reader = this_thread_reader;
  return reader < readers_ ? reader_counters_[reader] : nullptr;
}

void SessionTable::quiescent(unsigned reader) const { rte_rcu_qsbr_quiescent(rcu_, reader); }

void SessionTable::unregister_reader(unsigned reader) {
  rte_rcu_qsbr_thread_offline(rcu_, reader);
  rte_rcu_qsbr_thread_unregister(rcu_, reader);
  if (reader < readers_) reader_counters_[reader] = nullptr;
  this_thread_reader = kNoReader;
}

SweepResult SessionTable::sweep(std::uint64_t now, std::uint32_t budget) {
  SweepResult result;
  for (std::uint32_t i = 0; i < budget; ++i) {
    const std::int32_t position = static_cast<std::int32_t>(sweep_cursor_);
    sweep_cursor_ = sweep_cursor_ + 1 == slot_count_ ? 0 : sweep_cursor_ + 1;
    Slot& slot = slots_[position];
    const std::uint64_t deadline = slot.deadline.load(std::memory_order_relaxed);
    if (deadline == 0 || deadline >= now) continue;
    SessionEntry entry;
    if (!entry_at(static_cast<std::uint32_t>(position), entry)) {
      slot.deadline.store(0, std::memory_order_relaxed);  // a slot freed earlier
      continue;
    }
    const SessionKey& copy = entry.key;
    const bool ftp_slot = copy.kind == SessionKind::ftp_expectation;
    bool expired = true;  // an FTP expectation claimed by its data connection did not expire
    if (ftp_slot && !retire_ftp_slot(position, now, expired)) continue;
    slot.deadline.store(0, std::memory_order_relaxed);
    slot.claimed.store(0, std::memory_order_relaxed);
    slot.call.store(kCallLive, std::memory_order_relaxed);
    slot.opener.store(0, std::memory_order_relaxed);
    if (rte_hash_del_key(hash_, &copy) >= 0) {
      if (expired) result.expired[static_cast<std::size_t>(copy.kind)]++;
      const std::uint32_t counted = slot.counted_on.exchange(0, std::memory_order_acq_rel);
      if (counted != 0) uncount(copy.kind, counted, true);
    }
    if (ftp_slot) {
      std::uint64_t deleting = kFtpSlotDeleting;
      ftp_tickets_[position].compare_exchange_strong(deleting, 0, std::memory_order_acq_rel);
    }
  }
  return result;
}

bool SessionTable::entry_at(std::uint32_t position, SessionEntry& entry) const {
  void* key;
  if (rte_hash_get_key_with_position(hash_, static_cast<std::int32_t>(position), &key) != 0)
    return false;
  entry.key = *static_cast<const SessionKey*>(key);
  void* data;
  if (rte_hash_lookup_data(hash_, &entry.key, &data) != static_cast<std::int32_t>(position))
    return false;
  entry.route = unpack(data);
  entry.deadline = slots_[position].deadline.load(std::memory_order_relaxed);
  entry.ended = entry.key.kind == SessionKind::sip_call &&
                slots_[position].call.load(std::memory_order_relaxed) == kCallEnded;
  entry.holds_call = holds_call(static_cast<std::int32_t>(position));
  return true;
}

bool SessionTable::live_entry(std::uint32_t position, std::uint64_t now, SessionEntry& entry) const {
  const std::uint64_t deadline = slots_[position].deadline.load(std::memory_order_relaxed);
  // 0: a free slot, or an entry a worker is adding right now (its deadline comes next).
  if (deadline == 0 || deadline < now) return false;
  if (!entry_at(position, entry)) return false;
  if (entry.key.kind != SessionKind::ftp_expectation) return true;
  const std::uint64_t ticket = ftp_tickets_[position].load(std::memory_order_acquire);
  switch (ftp_state(ticket)) {
    case FtpSlotState::none: return ticket != kFtpSlotDeleting;  // one add() made whole
    case FtpSlotState::outstanding:
      entry.route.backend = ftp_backend(ticket);
      return true;
    case FtpSlotState::filling:
    case FtpSlotState::used:
      break;
  }
  return false;
}

const char* to_string(SessionKind kind) {
  switch (kind) {
    case SessionKind::sip_call: return "sip_call";
    case SessionKind::rtp_expectation: return "rtp_expectation";
    case SessionKind::ftp_expectation: return "ftp_expectation";
    case SessionKind::synced_flow: return "synced_flow";
    case SessionKind::fragment: return "fragment";
    case SessionKind::count_: break;
  }
  return "unknown";
}

// Not rte_hash_count(): that counts deleted slots until RCU reclaims them.
std::uint32_t SessionTable::size() const {
  return static_cast<std::uint32_t>(entries_.load(std::memory_order_relaxed));
}

}  // namespace tether::dataplane
