// CRC32C steps for the hashes every packet takes (flow signature, service index).
//
// rte_hash_crc_8byte and _4byte read a global on every call to choose between the CRC32
// instruction and a table. A build whose target has SSE4.2 (the default -Dmarch=native here,
// and DPDK's own x86 baseline, corei7) uses the instruction directly; any other build calls
// rte_hash_crc. The result is the same CRC32C either way, so signatures agree with
// rte_hash_crc and across builds and instances (test_flow_table checks both helpers).
#pragma once

#include <rte_hash_crc.h>

#include <cstdint>

#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif

namespace tether::dataplane {

// 64 bits in and out, so that a chain of steps needs no zero-extension between them: the
// instruction leaves the upper half zero.
inline std::uint64_t crc32c_8byte(std::uint64_t data, std::uint64_t crc) {
#if defined(__SSE4_2__)
  return _mm_crc32_u64(crc, data);
#else
  return rte_hash_crc_8byte(data, static_cast<std::uint32_t>(crc));
#endif
}

inline std::uint32_t crc32c_4byte(std::uint32_t data, std::uint32_t crc) {
#if defined(__SSE4_2__)
  return _mm_crc32_u32(crc, data);
#else
  return rte_hash_crc_4byte(data, crc);
#endif
}

}  // namespace tether::dataplane
