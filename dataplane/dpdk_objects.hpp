#pragma once
// Creating DPDK's rings and hash tables, with DPDK's reason in the error.

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_ring.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tether::dataplane {

inline rte_ring* make_ring(const std::string& name, unsigned size, int socket, unsigned flags) {
  rte_ring* ring = rte_ring_create(name.c_str(), size, socket, flags);
  if (ring == nullptr)
    throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
  return ring;
}

// `what` names the table in the error ("flow table", "session table").
inline rte_hash* make_hash(const char* what, const char* name, std::uint32_t entries,
                           std::uint32_t key_len, rte_hash_function hash_func,
                           std::uint32_t seed, int socket, std::uint8_t extra_flags = 0) {
  rte_hash_parameters params{};
  params.name = name;
  params.entries = entries;
  params.key_len = key_len;
  params.hash_func = hash_func;
  params.hash_func_init_val = seed;
  params.socket_id = socket;
  params.extra_flag = extra_flags;
  rte_hash* hash = rte_hash_create(&params);
  if (hash == nullptr)
    throw std::runtime_error(std::string("cannot create ") + what + " " + name + ": " +
                             rte_strerror(rte_errno));
  return hash;
}

}  // namespace tether::dataplane
