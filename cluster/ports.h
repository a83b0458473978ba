// Loopback ports for the processes a test or bench starts.
#pragma once

#include <netinet/in.h>

namespace pact {

// 127.0.0.1:port (0: any port, for bind).
sockaddr_in LoopbackAddress(int port);

// A loopback port the kernel says is free right now. Another process may
// take it before the server binds it: starters retry on a bind failure.
int FreePort();
// A plain TCP connection to 127.0.0.1:port; -1 if it cannot connect.
int ConnectToLoopback(int port);

}  // namespace pact
