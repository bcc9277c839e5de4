#include "dataplane/links.hpp"

#include "dataplane/dpdk_objects.hpp"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <stdexcept>
#include <string>

namespace tether::dataplane {
namespace {

// Probe replies and neighbour answers the control thread has not read yet.
constexpr unsigned kExceptionRingSize = 4096;
// Health probes and neighbour requests worker 0 has not sent yet.
constexpr unsigned kOutboundRingSize = 1024;
// Frames for the kernel interfaces the control thread has not written yet: the workers' rate
// limits keep it from filling between two of the control thread's polls.
constexpr unsigned kKernelRingSize = 4096;

}  // namespace

void Links::RingFree::operator()(rte_ring* ring) const {
  void* mbuf = nullptr;
  while (rte_ring_dequeue(ring, &mbuf) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(mbuf));
  rte_ring_free(ring);
}

void Links::ValueRingFree::operator()(rte_ring* ring) const { rte_ring_free(ring); }

Links::Links(unsigned workers, std::uint32_t session_capacity, bool kernel_interfaces, bool sync,
             int socket, const FragmentSettings& fragments)
    : exceptions_(make_ring("exceptions", kExceptionRingSize, socket, RING_F_SC_DEQ)),
      outbound_(make_ring("control_out", kOutboundRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ)),
      snapshots_(workers, socket),
      sessions_("sessions", session_capacity, workers, socket),
      to_kernel_(kernel_interfaces ? make_ring("to_kernel", kKernelRingSize, socket, RING_F_SC_DEQ) : nullptr),
      fragments_("fragments", fragments.table, workers, socket),
      fragment_handoffs_(workers > 1 ? std::make_unique<FragmentHandoffs>(workers, fragments.buffer_per_worker, socket)
                                     : nullptr) {
  for (unsigned w = 0; w < workers; ++w) {
    workers_.push_back(std::make_unique<PerWorker>());
    if (!sync) continue;
    const std::string name = "sync_events" + std::to_string(w);
    rte_ring* ring = rte_ring_create_elem(name.c_str(), sizeof(SyncEvent), kSyncEventRingSize, socket,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (ring == nullptr)
      throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
    workers_.back()->sync_events.reset(ring);
  }
}

WorkerLinks Links::worker(unsigned index) {
  PerWorker& own = *workers_.at(index);
  return {&snapshots_.channel(index),
          &sessions_,
          &connections_,
          admission_.get(),
          &own.flow_samples,
          exceptions_.get(),
          index == 0 ? outbound_.get() : nullptr,
          to_kernel_.get(),
          own.sync_events.get(),
          &own.sync_dump,
          &own.counters,
          own.backend_counters,
          own.service_counters,
          &stop_,
          &fragments_,
          fragment_handoffs_.get()};
}

}  // namespace tether::dataplane
