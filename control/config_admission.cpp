// A service's admission settings: its backends' capacities (max_sessions, max_connections)
// and its `admission` group (overload policy, the 503's Retry-After, the SIP methods that
// open a session, rate limits). docs/design.md "Admission" says how the dataplane uses them.
#include <string>

#include "control/config.hpp"
#include "control/config_file.hpp"
#include "parsers/sip.hpp"

namespace tether {
namespace {

// A limit no deployment reaches and whose products with TSC rates stay within 64 bits.
constexpr long long kMaxCapacity = 100'000'000;
constexpr long long kMaxRate = 10'000'000;

bool counts_sessions(const ServiceConfig& service) {
  return (service.dpi == SessionProtocol::sip && service.protocol == Protocol::udp) ||
         service.dpi == SessionProtocol::rtsp || service.dpi == SessionProtocol::ftp;
}

void check_capacities(const GroupReader& r, const Setting& members,
                      const std::vector<ServiceBackend>& backends, const ServiceConfig& service) {
  for (std::size_t j = 0; j < backends.size(); ++j) {
    const Setting& member = members[static_cast<int>(j)];
    if (backends[j].max_sessions != 0 && !counts_sessions(service))
      r.fail(member["max_sessions"],
             "max_sessions counts SIP calls, RTSP sessions or FTP control connections: it needs "
             "dpi 'sip' over udp, 'rtsp' or 'ftp' (max_connections for other tcp services)");
    if (backends[j].max_connections != 0 && (service.protocol != Protocol::tcp || service.dpi))
      r.fail(member["max_connections"],
             "max_connections needs a tcp service without dpi (max_sessions for sip, rtsp, ftp)");
  }
}

}  // namespace

void read_capacities(const GroupReader& member, ServiceBackend& backend) {
  backend.max_sessions = static_cast<std::uint32_t>(member.integer("max_sessions", 1, kMaxCapacity, 0));
  backend.max_connections = static_cast<std::uint32_t>(member.integer("max_connections", 1, kMaxCapacity, 0));
}

void read_admission(const GroupReader& r, const Document& doc, ServiceConfig& service) {
  check_capacities(r, r.list("backends"), service.backends, service);
  for (std::size_t p = 0; p < service.pools.size(); ++p)
    check_capacities(r, r.get("pools")[static_cast<int>(p)]["backends"], service.pools[p].backends, service);
  if (!r.has("admission")) return;
  GroupReader a(r.get("admission"), doc, {"overload", "retry_after", "methods", "rate", "client_rate"});
  AdmissionConfig& admission = service.admission;
  admission.overload = a.choice<OverloadPolicy>(
      "overload", {{"reject", OverloadPolicy::reject}, {"drop", OverloadPolicy::drop}}, OverloadPolicy::reject);
  const bool sip_udp = service.dpi == SessionProtocol::sip && service.protocol == Protocol::udp;
  if (!sip_udp && service.protocol != Protocol::tcp)
    a.fail_group("admission needs a tcp service or dpi 'sip' over udp (a udp flow has no "
                 "session to refuse)");
  for (const char* sip_only : {"retry_after", "methods"})
    if (a.has(sip_only) && !sip_udp) a.fail(a.get(sip_only), std::string(sip_only) + " needs dpi 'sip' over udp");
  admission.retry_after_s = static_cast<std::uint32_t>(a.integer("retry_after", 0, 86400, 30));
  if (a.has("methods")) {
    const Setting& methods = a.list("methods");
    if (methods.getLength() == 0) a.fail(methods, "needs at least one method");
    admission.sip_methods = 0;
    for (int i = 0; i < methods.getLength(); ++i) {
      if (methods[i].getType() != Setting::TypeString) a.fail(methods[i], "expected a method name string");
      const std::string name = methods[i].c_str();
      // ACK, BYE, CANCEL and PRACK never open a session; an unknown token cannot be told.
      using parsers::sip::Method;
      Method method = Method::other;
      for (unsigned m = 0; m < static_cast<unsigned>(Method::other); ++m)
        if (name == to_string(static_cast<Method>(m))) method = static_cast<Method>(m);
      if (method == Method::other || method == Method::ACK || method == Method::BYE ||
          method == Method::CANCEL || method == Method::PRACK)
        a.fail(methods[i], "'" + name + "' is not a SIP method that opens a session (INVITE, "
                           "SUBSCRIBE, REFER, REGISTER, OPTIONS, MESSAGE, PUBLISH, NOTIFY, INFO, UPDATE)");
      admission.sip_methods |= 1u << static_cast<unsigned>(method);
    }
  }
  admission.rate = static_cast<std::uint32_t>(a.integer("rate", 0, kMaxRate, 0));
  admission.client_rate = static_cast<std::uint32_t>(a.integer("client_rate", 0, kMaxRate, 0));
}

}  // namespace tether
