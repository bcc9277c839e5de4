// libFuzzer target for the FTP parser: commands and replies, walking the input line by line
// as a control connection would. Besides crashes and sanitizer reports it aborts when a
// result breaks the parser's contract.
#include "parsers/ftp.hpp"

#include "test/fuzz/fuzz_contract.hpp"

#include <cstdlib>

namespace ftp = tether::parsers::ftp;
using tether::parsers::ByteSpan;
using tether::parsers::Status;

using tether::fuzz::expect;
using tether::fuzz::expect_inside;

namespace {

// How many bytes the parser consumed, after checking its result; 0 to stop walking.
std::size_t check(const ftp::Command& c, ByteSpan input) {
  expect(ftp::to_string(c.reason) != nullptr && ftp::to_string(c.verb) != nullptr);
  expect_inside(c.verb_name, input);
  expect_inside(c.argument, input);
  if (c.status != Status::parsed && c.status != Status::malformed) return 0;
  expect(c.size > 0 && c.size <= input.size());
  expect(c.verb_name.size() == 3 || c.verb_name.size() == 4);
  if (c.status == Status::malformed) expect(c.data.family == ftp::Family::none);
  if (c.status == Status::parsed && (c.verb == ftp::Verb::PORT || c.verb == ftp::Verb::EPRT))
    expect(c.data.family != ftp::Family::none && c.data.port != 0);
  return c.size;
}

std::size_t check(const ftp::Reply& r, ByteSpan input) {
  expect_inside(r.text, input);
  if (r.status != Status::parsed && r.status != Status::malformed) return 0;
  expect(r.size > 0 && r.size <= input.size());
  expect(r.code >= 100 && r.code <= 599);
  if (r.status == Status::parsed && r.code == 227)
    expect(r.data.family == ftp::Family::ipv4 && r.data.port != 0);
  if (r.status == Status::parsed && r.code == 229) expect(r.data.port != 0);
  return r.size;
}

template <class Parse>
void walk(ByteSpan input, Parse parse) {
  while (std::size_t used = check(parse(input), input)) input = input.subspan(used);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ByteSpan input(data, size);
  walk(input, ftp::parse_command);
  walk(input, ftp::parse_reply);
  return 0;
}
