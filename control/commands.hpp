// The control socket's commands: what an operator sees and changes in a running tetherd.
#pragma once

#include <string>

#include "control/control_state.hpp"

namespace tether {

// One command line in, one JSON document out (an {"error": ...} for anything wrong).
std::string run_command(ControlState& state, const std::string& line);

}  // namespace tether
