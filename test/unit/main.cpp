// Catch2's main, plus one EAL for the tests that need DPDK memory (rte_hash, mempools):
// no hugepages, no shared files, no PCI, so tests run anywhere and in parallel.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <rte_eal.h>

int main(int argc, char** argv) {
  char arg0[] = "unit_tests";
  char no_huge[] = "--no-huge";
  char no_shconf[] = "--no-shconf";
  char no_pci[] = "--no-pci";
  char memory[] = "-m";
  char megabytes[] = "512";
  char log_level[] = "--log-level=lib.*:error";
  char* eal_argv[] = {arg0, no_huge, no_shconf, no_pci, memory, megabytes, log_level};
  if (rte_eal_init(7, eal_argv) < 0) return 2;
  const int failed = Catch::Session().run(argc, argv);
  rte_eal_cleanup();
  return failed;
}
