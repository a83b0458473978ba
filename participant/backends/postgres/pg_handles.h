// libpq's connection and result as handles that free themselves, for the
// backend and for whatever else talks to PostgreSQL (the throwaway servers
// of cluster/).
#pragma once

#include <libpq-fe.h>

#include <memory>

namespace pact {

struct PgConnCloser {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultClearer {
  void operator()(PGresult* res) const { PQclear(res); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnCloser>;
using PgResultPtr = std::unique_ptr<PGresult, PgResultClearer>;

}  // namespace pact
