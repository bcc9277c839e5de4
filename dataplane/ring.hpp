#pragma once
// Creating an rte_ring, with DPDK's reason in the error: every link between threads is one.

#include <rte_errno.h>
#include <rte_ring.h>

#include <stdexcept>
#include <string>

namespace tether::dataplane {

inline rte_ring* make_ring(const std::string& name, unsigned size, int socket, unsigned flags) {
  rte_ring* ring = rte_ring_create(name.c_str(), size, socket, flags);
  if (ring == nullptr)
    throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
  return ring;
}

}  // namespace tether::dataplane
