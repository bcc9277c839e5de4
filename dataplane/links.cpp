#include "dataplane/links.hpp"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <stdexcept>
#include <string>

namespace tether::dataplane {
namespace {

// Probe replies and neighbour answers the control thread has not read yet.
constexpr unsigned kExceptionRingSize = 4096;
// Health probes and neighbour requests worker 0 has not sent yet.
constexpr unsigned kOutboundRingSize = 1024;

rte_ring* make_ring(const char* name, unsigned size, int socket, unsigned flags) {
  rte_ring* ring = rte_ring_create(name, size, socket, flags);
  if (ring == nullptr)
    throw std::runtime_error(std::string("cannot create ring ") + name + ": " + rte_strerror(rte_errno));
  return ring;
}

void free_ring(rte_ring* ring) {
  if (ring == nullptr) return;
  void* mbuf = nullptr;
  while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
  rte_ring_free(ring);
}

}  // namespace

Links::Links(unsigned workers, std::uint32_t session_capacity, int socket)
    : snapshots_(workers, socket), sessions_("sessions", session_capacity, workers, socket) {
  for (unsigned w = 0; w < workers; ++w) workers_.push_back(std::make_unique<PerWorker>());
  exceptions_ = make_ring("exceptions", kExceptionRingSize, socket, RING_F_SC_DEQ);
  try {
    outbound_ = make_ring("control_out", kOutboundRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
  } catch (...) {
    free_ring(exceptions_);
    throw;
  }
}

Links::~Links() {
  free_ring(exceptions_);
  free_ring(outbound_);
}

WorkerLinks Links::worker(unsigned index) {
  PerWorker& own = *workers_.at(index);
  return {&snapshots_.channel(index),
          &sessions_,
          &own.flow_samples,
          exceptions_,
          index == 0 ? outbound_ : nullptr,
          &own.counters,
          own.backend_counters,
          &stop_};
}

}  // namespace tether::dataplane
