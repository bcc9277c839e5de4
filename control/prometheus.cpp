#include "control/prometheus.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "control/capacity.hpp"
#include "control/commands.hpp"
#include "control/health.hpp"

namespace tether {
namespace {

// A label value with the exposition format's escapes.
std::string escaped(const std::string& value) {
  std::string out;
  for (const char c : value) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

// Families in the order they first appear, each with its samples together, as the format
// requires.
class Exposition {
 public:
  using Labels = std::vector<std::pair<const char*, std::string>>;

  void add(const char* name, const char* type, const char* help, const Labels& labels,
           std::uint64_t value) {
    add_text(name, type, help, labels, std::to_string(value));
  }
  // `hundredths` / 100, exactly: "3", "0.5", "1.25".
  void add_hundredths(const char* name, const char* type, const char* help, const Labels& labels,
                      std::uint64_t hundredths) {
    std::string text = std::to_string(hundredths / 100);
    if (const std::uint64_t cents = hundredths % 100; cents != 0) {
      text += '.';
      text += static_cast<char>('0' + cents / 10);
      if (cents % 10 != 0) text += static_cast<char>('0' + cents % 10);
    }
    add_text(name, type, help, labels, text);
  }

  void add_text(const char* name, const char* type, const char* help, const Labels& labels,
                const std::string& value) {
    Family* family = nullptr;
    for (auto& f : families_)
      if (f.name == name) family = &f;
    if (family == nullptr) family = &families_.emplace_back(Family{name, type, help, {}});
    std::string& out = family->samples;
    out += "tether_";
    out += name;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      out += i == 0 ? '{' : ',';
      out += labels[i].first;
      out += "=\"";
      out += escaped(labels[i].second);
      out += '"';
    }
    out += labels.empty() ? " " : "} ";
    out += value;
    out += '\n';
  }

  std::string text() const {
    std::string out;
    for (const auto& f : families_) {
      for (const char* line : {"# HELP tether_", "# TYPE tether_"}) {
        out += line;
        out += f.name;
        out += ' ';
        out += line[2] == 'H' ? f.help : f.type;
        out += '\n';
      }
      out += f.samples;
    }
    return out;
  }

 private:
  struct Family {
    std::string name;
    const char* type;
    const char* help;
    std::string samples;
  };
  std::vector<Family> families_;
};

// The counters of list_counters, those of one worker (labelled) or of the control thread.
void add_counters(Exposition& out, const Totals& totals, const char* worker) {
  for (const CounterSample& c : list_counters(totals)) {
    const Metric& m = c.metric;
    if (m.per_worker != (worker != nullptr)) continue;
    Exposition::Labels labels;
    if (worker != nullptr) labels.emplace_back("worker", worker);
    if (m.label != nullptr) labels.emplace_back(m.label, m.label_value);
    out.add(m.name, m.type, m.help, labels, c.value);
  }
}

}  // namespace

std::string prometheus_metrics(const ControlState& state) {
  Exposition out;
  const auto& workers = *state.workers;
  const std::size_t backend_count = state.config.backends.size();
  for (std::size_t w = 0; w < workers.size(); ++w) {
    Totals one;
    one.backends.resize(backend_count);
    add_worker(one, *workers[w]);
    add_counters(out, one, std::to_string(w).c_str());
  }
  const Totals totals = state.totals();
  add_counters(out, totals, nullptr);

  for (std::size_t b = 0; b < backend_count; ++b) {
    const BackendConfig& backend = state.config.backends[b];
    if (backend.removed) continue;
    const Exposition::Labels labels{{"backend", backend.name}};
    const auto& c = totals.backends[b];
#define TETHER_BACKEND_FAMILY(name, help) \
    out.add("backend_" #name "_total", "counter", help, labels, c.name);
    TETHER_BACKEND_COUNTERS(TETHER_BACKEND_FAMILY)
#undef TETHER_BACKEND_FAMILY
    out.add("backend_up", "gauge", "1 while the backend is up (not down or draining), else 0.", labels,
            state.effective(b) == dataplane::BackendState::up ? 1 : 0);
    for (std::size_t r = 0; r < dataplane::kRefusalReasons; ++r)
      out.add("backend_sessions_refused_total", "counter",
              "New sessions refused that the scheduler had chosen the backend for, by reason (full: it and every "
              "other member with weight were full).",
              {{"backend", backend.name}, {"reason", to_string(static_cast<dataplane::RefusalReason>(r))}},
              c.refused[r]);
    // What least-connections and least-sessions rank by, summed over the workers.
    const auto index = static_cast<std::uint16_t>(b);
    if (state.connections != nullptr)
      out.add("backend_connections", "gauge", "Live TCP connections to the backend (least-connections' count).",
              labels, static_cast<std::uint64_t>(std::max<std::int64_t>(0, state.connections->at(index))));
    if (state.sessions != nullptr)
      out.add("backend_live_calls", "gauge",
              "Live SIP calls on the backend (least-sessions' count; what max_sessions holds for SIP).", labels,
              static_cast<std::uint64_t>(std::max<std::int64_t>(0, state.sessions->live_calls(index))));
  }
  for (std::size_t s = 0; s < state.config.services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    if (service.removed) continue;
    for (const ServiceBackend& member : service.backends) {
      const Exposition::Labels labels{{"service", service.name}, {"backend", state.config.backends[member.backend].name}};
      out.add("backend_weight", "gauge", "The backend's weight in the service's default pool.", labels, member.weight);
      // adaptive_weight's share of the weight (100 without it), as the workers have it now.
      const std::uint32_t percent =
          service.adaptive_weight && state.health != nullptr ? state.health->weight_percent(s, member.backend) : 100;
      out.add("backend_weight_percent", "gauge",
              "The percentage of its weight the backend has now: adaptive_weight lowers it while its health-check "
              "latency stays above its baseline (100 without adaptive_weight).",
              labels, static_cast<std::uint64_t>(percent));
      out.add_hundredths("backend_effective_weight", "gauge",
                         "The backend's weight in the service's default pool times backend_weight_percent / 100.",
                         labels, static_cast<std::uint64_t>(member.weight) * percent);
    }
  }
  const std::vector<dataplane::ServiceCounterValues>& services = totals.services;
  for (std::size_t s = 0; s < state.config.services.size() && s < services.size(); ++s) {
    const ServiceConfig& service = state.config.services[s];
    if (service.removed) continue;
    out.add("service_sessions_admitted_total", "counter",
            "New sessions the service admitted (a service with capacities or rate limits).",
            {{"service", service.name}}, services[s].admitted);
    for (std::size_t r = 0; r < dataplane::kRefusalReasons; ++r)
      out.add("service_sessions_refused_total", "counter",
              "New sessions the service refused, by reason: full (every backend with room gone), service_rate, "
              "client_rate.",
              {{"service", service.name}, {"reason", to_string(static_cast<dataplane::RefusalReason>(r))}},
              services[s].refused[r]);
  }
  if (state.sessions != nullptr)
    for (const CapacityRow& row : capacity_rows(state.config, *state.sessions, state.connections)) {
      const Exposition::Labels labels{{"service", row.service->name},
                                      {"backend", state.config.backends[row.backend].name},
                                      {"counts", row.counts}};
      out.add("backend_capacity", "gauge", "The backend's max_sessions or max_connections in the service.",
              labels, row.capacity);
      out.add("backend_held", "gauge", "Sessions or connections the backend holds, as its capacity counts them.",
              labels, static_cast<std::uint64_t>(row.held));
    }
  return out.text();
}

}  // namespace tether
