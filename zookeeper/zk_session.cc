#include "zookeeper/zk_session.h"

#include <glog/logging.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace pact {
namespace {

constexpr int kPasswordBytes = 16;  // clientid_t::passwd

void LogFromClient(const char* message) { LOG(WARNING) << "zookeeper client: " << message; }

// The client logs to stderr at INFO unless told otherwise: one line per
// connection attempt. Warnings and errors are kept, through glog.
void QuietClientLogs() {
  static const bool done = [] {
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    return true;
  }();
  (void)done;
}

int CreateFlags(ZkCreateMode mode) {
  switch (mode) {
    case ZkCreateMode::kPersistent: return ZOO_PERSISTENT;
    case ZkCreateMode::kEphemeral: return ZOO_EPHEMERAL;
    case ZkCreateMode::kPersistentSequential: return ZOO_PERSISTENT_SEQUENTIAL;
    case ZkCreateMode::kEphemeralSequential: return ZOO_EPHEMERAL_SEQUENTIAL;
  }
  return ZOO_PERSISTENT;
}

ZkStat FromStat(const Stat& s) {
  ZkStat out;
  out.version = s.version;
  out.child_version = s.cversion;
  out.ephemeral_owner = s.ephemeralOwner;
  out.num_children = s.numChildren;
  out.modified_zxid = s.mzxid;
  return out;
}

const std::string kUnknownOutcome =
    "the outcome is UNKNOWN: the request may have been applied, re-read before acting";

// The one mapping of ZooKeeper's return codes to Status; `what` says which
// call on which node.
Status FromZooKeeper(int rc, const std::string& what) {
  const std::string zk = std::string(" (") + zerror(rc) + ")";
  if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT || rc == ZSESSIONMOVED ||
      rc == ZCLOSING) {
    return Status::Unavailable(what + ": lost the ZooKeeper connection" + zk + "; " +
                               kUnknownOutcome);
  }
  if (rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE || rc == ZAUTHFAILED) {
    return Status::Unavailable(what + ": the ZooKeeper session expired" + zk +
                               ": this handle can do nothing more and its ephemeral nodes are "
                               "gone; connect a new session; " +
                               kUnknownOutcome);
  }
  if (rc == ZNONODE) return Status::NotFound(what + ": no such node" + zk);
  if (rc == ZBADVERSION) {
    return Status::FailedPrecondition(what + ": version mismatch, nothing changed" + zk);
  }
  if (rc == ZNODEEXISTS) {
    return Status::FailedPrecondition(what + ": node already exists, nothing changed" + zk);
  }
  if (rc == ZNOTEMPTY || rc == ZNOCHILDRENFOREPHEMERALS) {
    return Status::FailedPrecondition(what + zk);
  }
  if (rc == ZNOAUTH) return Status::PermissionDenied(what + zk);
  if (rc == ZBADARGUMENTS) return Status::InvalidArgument(what + zk);
  if (rc == ZTHROTTLEDOP) return Status::Busy(what + ": throttled, not executed" + zk);
  return Status::Internal(what + zk);
}

const char* OpName(ZkOp::Type type) {
  switch (type) {
    case ZkOp::Type::kCreate: return "create";
    case ZkOp::Type::kSet: return "set";
    case ZkOp::Type::kDelete: return "delete";
    case ZkOp::Type::kCheck: return "check";
  }
  return "?";
}

}  // namespace

const char* ZkSessionStateName(ZkSessionState state) {
  switch (state) {
    case ZkSessionState::kConnecting: return "CONNECTING";
    case ZkSessionState::kConnected: return "CONNECTED";
    case ZkSessionState::kConnectionLost: return "CONNECTION_LOST";
    case ZkSessionState::kExpired: return "EXPIRED";
  }
  return "?";
}

ZkOp ZkOp::Create(std::string path, std::string data, ZkCreateMode mode) {
  ZkOp op;
  op.type = Type::kCreate;
  op.path = std::move(path);
  op.data = std::move(data);
  op.mode = mode;
  return op;
}

ZkOp ZkOp::Set(std::string path, std::string data, int32_t expected_version) {
  ZkOp op;
  op.type = Type::kSet;
  op.path = std::move(path);
  op.data = std::move(data);
  op.version = expected_version;
  return op;
}

ZkOp ZkOp::Delete(std::string path, int32_t expected_version) {
  ZkOp op;
  op.type = Type::kDelete;
  op.path = std::move(path);
  op.version = expected_version;
  return op;
}

ZkOp ZkOp::Check(std::string path, int32_t version) {
  ZkOp op;
  op.type = Type::kCheck;
  op.path = std::move(path);
  op.version = version;
  return op;
}

ZkSession::ZkSession(ZkSessionOptions options) : options_(std::move(options)) {}

ZkSession::~ZkSession() {
  // Joins the client's threads: no listener runs after this.
  if (zh_ != nullptr) zookeeper_close(zh_);
}

Result<std::unique_ptr<ZkSession>> ZkSession::Connect(ZkSessionOptions options) {
  QuietClientLogs();
  std::unique_ptr<ZkSession> session(new ZkSession(std::move(options)));
  const ZkSessionOptions& o = session->options_;
  clientid_t resume{};
  if (o.resume) {
    if (o.resume->password.size() != kPasswordBytes) {
      return Status::InvalidArgument("a ZooKeeper session password has 16 bytes");
    }
    resume.client_id = o.resume->id;
    std::memcpy(resume.passwd, o.resume->password.data(), kPasswordBytes);
  }
  // The event thread may call OnEvent before zookeeper_init2 returns: the
  // object is complete by then.
  session->zh_ = zookeeper_init2(o.connect_string.c_str(), &ZkSession::OnEvent,
                                 o.session_timeout_ms, o.resume ? &resume : nullptr,
                                 session.get(), 0, &LogFromClient);
  if (session->zh_ == nullptr) {
    return Status::InvalidArgument("cannot start a ZooKeeper client for '" + o.connect_string +
                                   "': " + std::strerror(errno));
  }
  {
    std::unique_lock<std::mutex> lock(session->mu_);
    session->changed_.wait_for(lock, std::chrono::milliseconds(o.connect_timeout_ms), [&] {
      return session->state() == ZkSessionState::kConnected ||
             session->state() == ZkSessionState::kExpired;
    });
  }
  if (session->state() == ZkSessionState::kExpired) {
    return Status::Unavailable("the ZooKeeper session to resume has expired (" +
                               o.connect_string + ")");
  }
  if (session->state() != ZkSessionState::kConnected) {
    return Status::Unavailable("no ZooKeeper server of " + o.connect_string +
                               " accepted a session within " +
                               std::to_string(o.connect_timeout_ms) + " ms");
  }
  return session;
}

void ZkSession::OnEvent(zhandle_t* zh, int type, int state, const char* path, void* context) {
  auto* self = static_cast<ZkSession*>(context);
  if (type == ZOO_SESSION_EVENT) {
    if (state == ZOO_CONNECTED_STATE) {
      self->SetState(ZkSessionState::kConnected);
    } else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
      self->SetState(ZkSessionState::kExpired);
    } else if (state == ZOO_CONNECTING_STATE || state == ZOO_ASSOCIATING_STATE ||
               state == ZOO_NOTCONNECTED_STATE) {
      // Before the first connection nothing was lost yet.
      if (self->state() != ZkSessionState::kConnecting) {
        self->SetState(ZkSessionState::kConnectionLost);
      }
    }
    return;
  }
  if (!self->options_.on_watch || path == nullptr) return;
  ZkWatchEvent event;
  event.path = path;
  if (type == ZOO_CREATED_EVENT) {
    event.type = ZkWatchEventType::kCreated;
  } else if (type == ZOO_DELETED_EVENT) {
    event.type = ZkWatchEventType::kDeleted;
  } else if (type == ZOO_CHANGED_EVENT) {
    event.type = ZkWatchEventType::kChanged;
  } else if (type == ZOO_CHILD_EVENT) {
    event.type = ZkWatchEventType::kChildren;
  } else {
    return;  // ZOO_NOTWATCHING_EVENT: a watch was removed
  }
  self->options_.on_watch(event);
}

void ZkSession::SetState(ZkSessionState state) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Expiry is final: a late event of the dead handle changes nothing.
    if (state_ == state || state_ == ZkSessionState::kExpired) return;
    state_ = state;
  }
  changed_.notify_all();
  // Only the event thread calls SetState, so listeners see changes in order.
  if (options_.on_state) options_.on_state(state);
}

bool ZkSession::WaitForState(ZkSessionState state, int timeout_ms) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                           [&] { return state_ == state; });
}

ZkSessionCredentials ZkSession::credentials() const {
  const clientid_t* id = zoo_client_id(zh_);
  ZkSessionCredentials out;
  out.id = id->client_id;
  out.password.assign(id->passwd, kPasswordBytes);
  return out;
}

int ZkSession::negotiated_timeout_ms() const { return zoo_recv_timeout(zh_); }

Status ZkSession::CheckUsable(const std::string& what) const {
  const ZkSessionState now = state();
  if (now == ZkSessionState::kExpired) return FromZooKeeper(ZSESSIONEXPIRED, what);
  if (now != ZkSessionState::kConnected) {
    return Status::Unavailable(what + ": not connected to ZooKeeper (" + ZkSessionStateName(now) +
                               "); nothing was sent");
  }
  return Status::Ok();
}

Result<std::string> ZkSession::Create(const std::string& path, const std::string& data,
                                      ZkCreateMode mode) {
  const std::string what = "create " + path;
  RETURN_NOT_OK(CheckUsable(what));
  std::string created(path.size() + 32, '\0');  // room for a sequence suffix
  const int rc = zoo_create(zh_, path.c_str(), data.data(), static_cast<int>(data.size()),
                            &ZOO_OPEN_ACL_UNSAFE, CreateFlags(mode), created.data(),
                            static_cast<int>(created.size()));
  if (rc != ZOK) return FromZooKeeper(rc, what);
  created.resize(std::strlen(created.c_str()));
  return created;
}

Status ZkSession::CreateAll(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    Result<std::string> made = Create(prefix, "");
    // kFailedPrecondition from Create is "exists", which is what we want.
    if (!made.ok() && made.status().code() != StatusCode::kFailedPrecondition) {
      return made.status();
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

Result<ZkNode> ZkSession::Get(const std::string& path, bool watch) {
  const std::string what = "get " + path;
  RETURN_NOT_OK(CheckUsable(what));
  // The data may grow between two reads: read until the buffer held it all.
  std::string buffer(1024, '\0');
  while (true) {
    int length = static_cast<int>(buffer.size());
    Stat stat{};
    const int rc = zoo_get(zh_, path.c_str(), watch ? 1 : 0, buffer.data(), &length, &stat);
    if (rc != ZOK) return FromZooKeeper(rc, what);
    if (stat.dataLength <= static_cast<int>(buffer.size())) {
      ZkNode node;
      node.data = length > 0 ? buffer.substr(0, static_cast<size_t>(length)) : "";
      node.stat = FromStat(stat);
      return node;
    }
    buffer.assign(static_cast<size_t>(stat.dataLength), '\0');
  }
}

Result<ZkStat> ZkSession::Set(const std::string& path, const std::string& data,
                              int32_t expected_version) {
  const std::string what = "set " + path + " at version " + std::to_string(expected_version);
  RETURN_NOT_OK(CheckUsable(what));
  Stat stat{};
  const int rc = zoo_set2(zh_, path.c_str(), data.data(), static_cast<int>(data.size()),
                          expected_version, &stat);
  if (rc != ZOK) return FromZooKeeper(rc, what);
  return FromStat(stat);
}

Status ZkSession::Delete(const std::string& path, int32_t expected_version) {
  const std::string what = "delete " + path + " at version " + std::to_string(expected_version);
  RETURN_NOT_OK(CheckUsable(what));
  const int rc = zoo_delete(zh_, path.c_str(), expected_version);
  return rc == ZOK ? Status::Ok() : FromZooKeeper(rc, what);
}

Result<std::optional<ZkStat>> ZkSession::Exists(const std::string& path, bool watch) {
  const std::string what = "exists " + path;
  RETURN_NOT_OK(CheckUsable(what));
  Stat stat{};
  const int rc = zoo_exists(zh_, path.c_str(), watch ? 1 : 0, &stat);
  if (rc == ZNONODE) return std::optional<ZkStat>();
  if (rc != ZOK) return FromZooKeeper(rc, what);
  return std::optional<ZkStat>(FromStat(stat));
}

Result<std::vector<std::string>> ZkSession::Children(const std::string& path, bool watch) {
  const std::string what = "children of " + path;
  RETURN_NOT_OK(CheckUsable(what));
  String_vector names{};
  const int rc = zoo_get_children(zh_, path.c_str(), watch ? 1 : 0, &names);
  if (rc != ZOK) return FromZooKeeper(rc, what);
  std::vector<std::string> out(names.data, names.data + names.count);
  deallocate_String_vector(&names);
  std::sort(out.begin(), out.end());
  return out;
}

Result<std::vector<ZkOpResult>> ZkSession::Multi(const std::vector<ZkOp>& ops) {
  const std::string what = "multi of " + std::to_string(ops.size()) + " ops";
  if (ops.empty()) return std::vector<ZkOpResult>();
  RETURN_NOT_OK(CheckUsable(what));
  const size_t n = ops.size();
  // The C structs point into these; they outlive the call.
  std::vector<zoo_op_t> c_ops(n);
  std::vector<zoo_op_result_t> c_results(n);
  std::vector<std::string> created(n);
  std::vector<Stat> stats(n);
  for (size_t i = 0; i < n; ++i) {
    const ZkOp& op = ops[i];
    const int len = static_cast<int>(op.data.size());
    switch (op.type) {
      case ZkOp::Type::kCreate:
        created[i].assign(op.path.size() + 32, '\0');
        zoo_create_op_init(&c_ops[i], op.path.c_str(), op.data.data(), len, &ZOO_OPEN_ACL_UNSAFE,
                           CreateFlags(op.mode), created[i].data(),
                           static_cast<int>(created[i].size()));
        break;
      case ZkOp::Type::kSet:
        zoo_set_op_init(&c_ops[i], op.path.c_str(), op.data.data(), len, op.version, &stats[i]);
        break;
      case ZkOp::Type::kDelete:
        zoo_delete_op_init(&c_ops[i], op.path.c_str(), op.version);
        break;
      case ZkOp::Type::kCheck:
        zoo_check_op_init(&c_ops[i], op.path.c_str(), op.version);
        break;
    }
  }
  const int rc = zoo_multi(zh_, static_cast<int>(n), c_ops.data(), c_results.data());
  if (rc != ZOK) {
    // A server's refusal names the op that failed; the others carry ZOK or
    // ZRUNTIMEINCONSISTENCY (not applied either). Results are only filled
    // in when the server answered.
    if (rc < ZAPIERROR) {
      for (size_t i = 0; i < n; ++i) {
        const int err = c_results[i].err;
        if (err != ZOK && err != ZRUNTIMEINCONSISTENCY) {
          return FromZooKeeper(err, what + ": op " + std::to_string(i) + " (" +
                                        OpName(ops[i].type) + " " + ops[i].path + ")");
        }
      }
    }
    return FromZooKeeper(rc, what);
  }
  std::vector<ZkOpResult> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (ops[i].type == ZkOp::Type::kCreate) {
      out[i].created_path = created[i].c_str();
    } else if (ops[i].type == ZkOp::Type::kSet) {
      out[i].stat = FromStat(stats[i]);
    }
  }
  return out;
}

}  // namespace pact
