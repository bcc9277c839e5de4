// tetherd: the balancer daemon. The main lcore is the control thread: it reads the
// configuration, brings the ports up, builds the snapshot, launches one worker per worker
// lcore and then watches for a stop signal.
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_memory.h>
#include <rte_pdump.h>
#include <rte_ring.h>
#include <rte_mbuf.h>
#include <rte_lcore.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <span>
#include <thread>
#include <variant>

#include "control/announce.hpp"
#include "control/cli_server.hpp"
#include "control/commands.hpp"
#include "control/config.hpp"
#include "control/control_ports.hpp"
#include "control/ha.hpp"
#include "control/health.hpp"
#include "control/kernel_interfaces.hpp"
#include "control/neighbours.hpp"
#include "control/log.hpp"
#include "control/report.hpp"
#include "control/service_manager.hpp"
#include "control/snapshot_builder.hpp"
#include "control/metrics_server.hpp"
#include "control/prometheus.hpp"
#include "control/telemetry.hpp"
#include "dataplane/links.hpp"
#include "dataplane/port.hpp"
#include "dataplane/worker.hpp"

namespace po = boost::program_options;

namespace tether {
namespace {

constexpr const char* kVersion = "tetherd 0.1.0";

std::atomic<bool> stop_requested{false};

void on_signal(int) { stop_requested.store(true); }

struct Options {
  std::string config_path;
  bool check = false;
  std::string log_level;
  std::string stats_file;
  double idle_exit_s = 0;
  std::string socket_path = "/run/tether/tetherd.sock";
  std::vector<std::string> eal_args;  // after `--`
};

// Returns the parsed options, or an exit code when the command line says to stop here.
std::variant<Options, int> parse_command_line(int argc, char** argv) {
  Options options;
  // Everything after `--` belongs to the EAL; boost would try to read it.
  int own_argc = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--") {
      own_argc = i;
      options.eal_args.assign(argv + i + 1, argv + argc);
      break;
    }

  po::options_description visible("Usage: tetherd -c FILE [options] [-- EAL arguments]\nOptions");
  visible.add_options()
      ("help,h", "print this help and exit")
      ("version", "print the version and exit")
      ("config,c", po::value(&options.config_path)->value_name("FILE"), "configuration file (required)")
      ("check", "validate the configuration, print what would run, exit 0 if valid, 1 if not")
      ("log-level", po::value(&options.log_level)->value_name("LEVEL"),
       "error, warning, info or debug (overrides log_level in the file)")
      ("socket,s", po::value(&options.socket_path)->value_name("PATH"),
       "control socket for tetherctl (default /run/tether/tetherd.sock)")
      ("stats-file", po::value(&options.stats_file)->value_name("FILE"),
       "write the counters as JSON to FILE on exit")
      ("idle-exit", po::value(&options.idle_exit_s)->value_name("SECONDS"),
       "exit once no packet has arrived for SECONDS (for replaying pcap files)");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(own_argc, argv).options(visible).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << "tetherd: " << e.what() << "\n" << visible;
    return 2;
  }
  if (vm.count("help")) {
    std::cout << visible;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << kVersion << "\n";
    return 0;
  }
  if (options.config_path.empty()) {
    std::cerr << "tetherd: --config is required\n" << visible;
    return 2;
  }
  if (options.idle_exit_s < 0) {
    std::cerr << "tetherd: --idle-exit must not be negative\n";
    return 2;
  }
  options.check = vm.count("check") > 0;
  return options;
}

std::vector<std::string> eal_arguments(const Config& config, const Options& options) {
  std::vector<std::string> args{"tetherd"};
  args.insert(args.end(), config.eal_args.begin(), config.eal_args.end());
  args.insert(args.end(), options.eal_args.begin(), options.eal_args.end());
  if (!eal_sets_lcores(args)) {
    // The control thread plus one lcore per worker; float them over the CPUs we have when
    // there are fewer CPUs than lcores (a lab or CI machine, not a production layout).
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    const unsigned last = config.workers;
    if (last < cpus)
      args.insert(args.end(), {"-l", "0-" + std::to_string(last)});
    else
      args.push_back("--lcores=(0-" + std::to_string(last) + ")@(0-" + std::to_string(cpus - 1) + ")");
  }
  for (const auto& port : config.ports) {
    args.push_back(dataplane::device_argument_flag(port.device));
    args.push_back(port.device);
  }
  return args;
}

int worker_main(void* arg) {
  static_cast<dataplane::Worker*>(arg)->run();
  return 0;
}

// Packets the workers handed over: neighbour answers and health-probe replies. On a port with
// a kernel interface, the kernel gets the neighbour answers too (it may have asked as well)
// and whatever no probe claims. True when a backend's MAC or health changed.
bool handle_control_packets(rte_ring* exceptions, const ControlPorts& ports,
                            NeighbourResolver& neighbours, HealthChecker& health,
                            KernelInterfaces* kernel, std::uint64_t now) {
  bool changed = false;
  void* item = nullptr;
  while (rte_ring_sc_dequeue(exceptions, &item) == 0) {
    auto* mbuf = static_cast<rte_mbuf*>(item);
    const std::span<const std::uint8_t> frame{rte_pktmbuf_mtod(mbuf, const std::uint8_t*),
                                              rte_pktmbuf_data_len(mbuf)};
    parsers::ParsedFrame parsed;
    dataplane::NeighbourAnswer answer;
    bool for_kernel = true;
    if (parsers::parse_frame(frame, parsed) == parsers::ParseStatus::ok) {
      if (dataplane::neighbour_answer(frame.data(), parsed, answer)) {
        if (const auto port = ports.index_of(mbuf->port)) changed |= neighbours.receive(answer, *port, now);
      } else {
        const HealthChecker::Received received = health.receive(frame, parsed);
        changed |= received.changed;
        for_kernel = !received.matched;
      }
    }
    if (for_kernel && kernel != nullptr && kernel->has(mbuf->port))
      kernel->deliver(mbuf);
    else
      rte_pktmbuf_free(mbuf);
  }
  return changed;
}

int run(const Config& config, const Options& options) {
  // Before anything else: a second tetherd on the same socket must not touch the ports.
  std::unique_ptr<CliServer> cli;
  std::unique_ptr<MetricsServer> metrics_server;
  try {
    std::filesystem::create_directories(std::filesystem::path(options.socket_path).parent_path());
    cli = std::make_unique<CliServer>(options.socket_path);
    // Bound here too, so that a taken address stops tetherd before it touches a port.
    if (config.metrics) metrics_server = std::make_unique<MetricsServer>(*config.metrics);
  } catch (const std::exception& e) {
    TETHER_LOG(error, "%s", e.what());
    return 1;
  }
  TETHER_LOG(info, "control socket %s", cli->path().c_str());
  std::vector<std::string> args = eal_arguments(config, options);
  std::string joined;
  for (const auto& a : args) joined += " " + a;
  TETHER_LOG(info, "EAL arguments:%s", joined.c_str());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    TETHER_LOG(error, "EAL initialisation failed: %s", rte_strerror(rte_errno));
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  int status = 0;
  ServiceManager service_manager(rte_get_tsc_hz());
  std::vector<dataplane::OpenPort> ports;
  std::unique_ptr<dataplane::Links> links;  // outlives the workers, which hold its ends
  std::vector<std::unique_ptr<dataplane::Worker>> workers;
  dataplane::SweepResult expired;
  std::unique_ptr<ControlPorts> control_ports;
  std::unique_ptr<NeighbourResolver> neighbours;
  std::unique_ptr<KernelInterfaces> kernel;
  std::unique_ptr<SyncReceiver> sync;
  std::unique_ptr<SyncSender> sync_sender;
  std::unique_ptr<HaStatus> ha;
  std::unique_ptr<WorkerProgress> progress;
  std::unique_ptr<ControlState> control;
  std::unique_ptr<HealthChecker> health;
  std::unique_ptr<Announcer> announcer;
  try {
    if (rte_lcore_count() < config.workers + 1)
      throw std::runtime_error("need " + std::to_string(config.workers + 1) +
                               " lcores (control + workers), the EAL has " +
                               std::to_string(rte_lcore_count()));
    std::vector<PortIdentity> identities;
    for (const auto& port : config.ports) {
      ports.push_back(dataplane::open_port({port.name, port.device,
                                            static_cast<std::uint16_t>(config.workers),
                                            port.mbufs.value_or(config.mbufs_per_port),
                                            config.mbuf_data_size, port.mac}));
      identities.push_back({ports.back().port_id, ports.back().mac});
      TETHER_LOG(info, "port %s: DPDK port %u, mac %s, %u queue pair(s)%s", port.name.c_str(),
                 ports.back().port_id, format_mac(ports.back().mac).c_str(), config.workers,
                 ports.back().rss ? ", RSS" : "");
    }
    {  // a backend MAC equal to a port's device MAC, which --check could not know
      std::vector<MacBytes> device_macs;
      for (const auto& identity : identities) device_macs.push_back(identity.mac);
      validate(config, device_macs);
    }
    const bool kernel_interfaces = std::any_of(config.ports.begin(), config.ports.end(),
                                               [](const PortConfig& p) { return p.kernel.has_value(); });
    links = std::make_unique<dataplane::Links>(config.workers, config.sessions, kernel_interfaces,
                                               config.sync.has_value(),
                                               SOCKET_ID_ANY, config.fragments);
    std::vector<ControlPort> control_port_list;
    for (std::size_t i = 0; i < ports.size(); ++i)
      control_port_list.push_back({ports[i].port_id, ports[i].mac, ports[i].control_queue, ports[i].pool,
                                   links->outbound(), config.ports[i].addresses});
    control_ports = std::make_unique<ControlPorts>(std::move(control_port_list));
    neighbours = std::make_unique<NeighbourResolver>(config, *control_ports, rte_get_tsc_hz());
    if (kernel_interfaces)
      kernel = std::make_unique<KernelInterfaces>(config, *control_ports, config.mbuf_data_size);
    // After the kernel interfaces: its socket is bound to the address one of them carries.
    if (config.sync) {
      sync = std::make_unique<SyncReceiver>(config);
      sync_sender = std::make_unique<SyncSender>(config, *sync, *links, rte_get_tsc_hz());
    }

    control = std::make_unique<ControlState>(ControlState{
        config, std::vector<dataplane::BackendState>(config.backends.size()), nullptr,
        neighbours.get(), options.config_path, identities, rte_get_tsc_hz(), &links->snapshots(),
        &workers, &links->sessions(), &expired, kernel.get(), sync.get(), sync_sender.get()});
    // Before the first snapshot: a pair's backup must not forward its first packet.
    if (config.ha) {
      ha = std::make_unique<HaStatus>(*config.ha, rte_rdtsc(), rte_get_tsc_hz());
      control->ha = ha.get();
      TETHER_LOG(info, "ha: starting as %s", to_string(ha->role()));
    }
    progress = std::make_unique<WorkerProgress>(rte_get_tsc_hz());
    control->progress = progress.get();
    control->metrics_server = metrics_server.get();
    control->connections = &links->connections();
    control->fragments = &links->fragments();
    if (config.announce) {
      announcer = std::make_unique<Announcer>(config, rte_get_tsc_hz());
      control->announcer = announcer.get();
    }
    // Backends whose MAC is still to be resolved start down.
    const dataplane::Snapshot* first = links->snapshots().initial(control->build());

    unsigned lcore = rte_get_next_lcore(-1, 1, 0);
    for (unsigned w = 0; w < config.workers; ++w, lcore = rte_get_next_lcore(lcore, 1, 0))
      workers.push_back(std::make_unique<dataplane::Worker>(
          dataplane::WorkerSetup{w, static_cast<std::uint16_t>(w), config.flows_per_worker,
                                 config.dpi_streams_per_worker,
                                 static_cast<int>(rte_lcore_to_socket_id(lcore)),
                                 config.dpi_sessions_per_worker, config.fragments},
          first, links->worker(w)));
    lcore = rte_get_next_lcore(-1, 1, 0);
    for (auto& worker : workers) {
      rte_eal_remote_launch(worker_main, worker.get(), lcore);
      TETHER_LOG(info, "worker %u on lcore %u", worker->index(), lcore);
      lcore = rte_get_next_lcore(lcore, 1, 0);
    }
    TETHER_LOG(info, "running: %zu service(s), %zu backend(s)", config.services.size(),
               config.backends.size());
    service_manager.ready("running: " + std::to_string(config.services.size()) + " service(s), " +
                          std::to_string(config.backends.size()) + " backend(s), " +
                          std::to_string(workers.size()) + " worker(s)");

    std::uint64_t last_rx = 0;
    auto last_activity = std::chrono::steady_clock::now();
    register_telemetry(&workers, config);
    // dpdk-dumpcap attaches as a secondary process: that needs the EAL's shared files,
    // which --in-memory and --no-shconf switch off.
    if (rte_pdump_init() != 0)
      TETHER_LOG(warning, "packet capture (pdump) unavailable: %s", rte_strerror(rte_errno));

    health = std::make_unique<HealthChecker>(control->config, *control_ports, *neighbours, rte_get_tsc_hz());
    control->health = health.get();
    const CliServer::Handler handle = [&](const std::string& line) {
      TETHER_LOG(debug, "command: %s", line.c_str());
      return run_command(*control, line);
    };

    // Sweep the whole session table about once a second, in slices.
    std::vector<std::uint64_t> worker_loops(workers.size());  // for `ha check`
    const std::uint32_t sweep_slice = std::max<std::uint32_t>(1024, config.sessions / 20);
    const std::uint32_t fragment_sweep_slice = std::max<std::uint32_t>(64, config.fragments.table / 20);
    // The announcements follow the workers, the backends and the state within 10 ms.
    const std::uint64_t announce_period = rte_get_tsc_hz() / 100;
    std::uint64_t next_announce = 0;
    control->started_tsc = rte_rdtsc();
    while (!stop_requested.load()) {
      // The kernel's traffic waits for this loop: a millisecond at most when there is any.
      std::int64_t wait_ms = kernel ? 1 : health->empty() ? 50 : 10;
      // The next round of VIP announcements is kept to its interval.
      if (ha && ha->next_announcement_ms(rte_rdtsc()) >= 0)
        wait_ms = std::min(wait_ms, ha->next_announcement_ms(rte_rdtsc()));
      cli->poll(std::chrono::milliseconds(wait_ms), handle);
      const std::uint64_t now = rte_rdtsc();
      if (ha && ha->announcement_due(now)) announce(control->config, *control_ports, ha->sent());
      for (std::size_t w = 0; w < workers.size(); ++w)
        worker_loops[w] = workers[w]->counters().busy_polls + workers[w]->counters().idle_polls;
      progress->observe(worker_loops, now);
      service_manager.tick(*progress, now);
      bool backends_changed = handle_control_packets(links->exceptions(), *control_ports, *neighbours,
                                                     *health, kernel.get(), now);
      if (kernel) kernel->poll(links->to_kernel());
      // What the kernel delivered to the sync socket (the frames came through kernel->poll).
      if (sync) sync->poll(control->config, links->sessions(), now, rte_get_tsc_hz());
      // The peers' health reports that changed, or expired with a silent peer.
      if (sync) backends_changed |= sync->take_health_changed(now, rte_get_tsc_hz());
      // What the workers reported, out through the kernel interface (sent on its next poll).
      if (sync_sender) sync_sender->poll(control->config, links->sessions(), now);
      backends_changed |= neighbours->tick(now);
      backends_changed |= health->tick(now);
      // This instance's own verdicts, for its peers (sent when one changed, and each second).
      if (sync_sender)
        sync_sender->report_health(health_view(control->config, [&](std::size_t b) { return health->healthy(b); }), now);
      if (backends_changed) control->republish();
      if (announcer && now >= next_announce) {
        next_announce = now + announce_period;
        announcer->apply(control->announcement_decisions(now), now);
        if (Drain& drain = announcer->drain(); drain.active()) {
          drain.observe(control->placed(), now);
          if (drain.done(now)) {
            TETHER_LOG(info, "drain: %s after %.1f s (%llu new flows and sessions placed during it): stopping",
                       drain.quiet(now) ? "no new flow or session for the quiet period" : "timed out",
                       static_cast<double>(drain.elapsed_ms(now)) / 1000,
                       static_cast<unsigned long long>(drain.placed_since_start()));
            break;
          }
        }
      }
      if (metrics_server) metrics_server->serve_pending([&] { return prometheus_metrics(*control); });
      links->snapshots().collect();
      const dataplane::SweepResult swept = links->sessions().sweep(now, sweep_slice);
      for (std::size_t k = 0; k < dataplane::kSessionKinds; ++k) expired.expired[k] += swept.expired[k];
      links->fragments().sweep(now, fragment_sweep_slice);
      Totals control_counts;
      control->set_control_counts(control_counts);
      set_telemetry_control_counts(control_counts);
      if (options.idle_exit_s > 0) {
        std::uint64_t rx = 0;
        for (const auto& w : workers) rx += w->counters().rx_packets;
        const auto wall = std::chrono::steady_clock::now();
        if (rx != last_rx) {
          last_rx = rx;
          last_activity = wall;
        } else if (std::chrono::duration<double>(wall - last_activity).count() >= options.idle_exit_s) {
          TETHER_LOG(info, "no packet for %.1f s: exiting", options.idle_exit_s);
          break;
        }
      }
    }
  } catch (const std::exception& e) {
    TETHER_LOG(error, "%s", e.what());
    status = 1;
  }

  service_manager.stopping();
  // Stopping: the routers should stop sending here before the workers stop forwarding.
  if (announcer) announcer->withdraw_all();
  withdraw_telemetry();
  rte_pdump_uninit();
  if (links) links->stop_workers();
  rte_eal_mp_wait_lcore();
  // Reloads and backend commands may have changed the backends since the start.
  const Config& final_config = control ? control->config : config;
  if (!workers.empty()) {  // the workers came after the control state
    const Totals totals = control->totals();
    std::cout << summary_text(final_config, totals) << std::flush;
    if (!options.stats_file.empty()) {
      std::ofstream file(options.stats_file);
      file << counters_json(final_config, totals);
      if (!file) {
        TETHER_LOG(error, "cannot write %s", options.stats_file.c_str());
        status = 1;
      }
    }
  }
  // Before the state its renderings read goes.
  metrics_server.reset();
  workers.clear();
  announcer.reset();
  sync_sender.reset();
  sync.reset();
  health.reset();
  control.reset();
  neighbours.reset();
  control_ports.reset();
  links.reset();
  for (auto& port : ports) dataplane::close_port(port);
  // Last: the kernel's frames, in their pools, may still sit in the rings and TX queues above.
  kernel.reset();
  rte_eal_cleanup();
  return status;
}

}  // namespace
}  // namespace tether

int main(int argc, char** argv) {
  using namespace tether;
  auto parsed = parse_command_line(argc, argv);
  if (auto* code = std::get_if<int>(&parsed)) return *code;
  Options& options = std::get<Options>(parsed);

  Config config;
  try {
    config = load_config_file(options.config_path);
  } catch (const ConfigError& e) {
    std::cerr << "tetherd: " << e.what() << "\n";
    return 1;
  }
  if (!log::set_level(options.log_level.empty() ? config.log_level : options.log_level)) {
    std::cerr << "tetherd: --log-level: '" << options.log_level
              << "' is not one of error, warning, info, debug\n";
    return 2;
  }
  // The file's EAL arguments were judged as it was read; now with the command line's.
  std::vector<std::string> eal_args = config.eal_args;
  eal_args.insert(eal_args.end(), options.eal_args.begin(), options.eal_args.end());
  if (const auto wrong = eal_problem(eal_args, config)) {
    std::cerr << "tetherd: EAL argument '" << eal_args[wrong->index] << "' ("
              << (wrong->index < config.eal_args.size() ? "eal in " + options.config_path
                                                        : "command line after '--'")
              << "): " << wrong->message << "\n";
    return 1;
  }
  if (options.check) {
    std::cout << describe(config);
    return 0;
  }
  return run(config, options);
}
