// A testing seam for the journal's hardest failure: an fsync that reports an
// error after the data may already be on disk. Registers a SQLite VFS that
// forwards everything to the default one, except that while `trigger_path`
// exists every sync fails with SQLITE_IOERR_FSYNC after the real sync ran.
// If the file holds a number N, only the next N syncs fail; "S N" lets S
// syncs pass first (it counts down and removes itself). Armed by the coordinator's PACT_INJECT_JOURNAL_FSYNC_ERROR.
#pragma once

#include <string>

#include "common/status.h"

namespace pact {

// Returns the VFS name to open the journal with. Call once per process.
Result<std::string> RegisterFsyncFaultVfs(const std::string& trigger_path);

}  // namespace pact
