// One ZooKeeper session over the multi-threaded C client (libzookeeper_mt),
// with synchronous calls that return Status/Result, and the one mapping of
// ZooKeeper's error codes to Status:
//
//   ZCONNECTIONLOSS, ZOPERATIONTIMEOUT  kUnavailable: the outcome is UNKNOWN (a
//                                       write may have been applied)
//   the session expired                 kUnavailable too, saying so; expired()
//                                       is then true and the handle is dead
//   not connected right now             kUnavailable, nothing was sent
//   ZNONODE                             kNotFound
//   ZBADVERSION, ZNODEEXISTS, ZNOTEMPTY kFailedPrecondition: nothing changed
//                                       (Status has no "exists" code; only
//                                       Create and Multi can meet ZNODEEXISTS,
//                                       and Multi's message names the op)
//
// Sessions: the client connects to one server of the connect string at a
// time and moves to another when that one stops answering; the session (and
// its ephemeral nodes) lives on across such moves until the servers have not
// heard from it for the session timeout, then it is expired for good and a
// new ZkSession is needed. The client declares a connection lost after 2/3 of
// the timeout without a reply, so kConnectionLost comes before the servers
// could have expired the session: a holder of an ephemeral node (a leader)
// must stop acting on it from kConnectionLost on, not wait for kExpired.
//
// Thread-safe: calls may be made from any thread, concurrently, except from a
// listener (which runs on the client's event thread: a call there deadlocks).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

typedef struct _zhandle zhandle_t;  // NOLINT: the C client's opaque handle

namespace pact {

enum class ZkSessionState {
  kConnecting,      // before the first connection
  kConnected,       // connected (again), the session is valid
  kConnectionLost,  // no server answers now; the session may still be valid
  kExpired,         // the servers ended the session: this handle is dead
};

const char* ZkSessionStateName(ZkSessionState state);

enum class ZkWatchEventType { kCreated, kDeleted, kChanged, kChildren };

struct ZkWatchEvent {
  ZkWatchEventType type;
  std::string path;
};

// REQUIRES of every listener: returns quickly and calls no ZkSession method
// (it runs on the client's one event thread; hand work to another thread).
using ZkSessionListener = std::function<void(ZkSessionState)>;
using ZkWatchListener = std::function<void(const ZkWatchEvent&)>;

// What names a session to the servers. A new handle given these joins the
// session (for a process that lost its handle: two live handles of one session
// steal it from each other at every reconnect).
struct ZkSessionCredentials {
  int64_t id = 0;
  std::string password;  // 16 bytes, binary
};

struct ZkSessionOptions {
  std::string connect_string;  // "host:port,host:port,..."
  // The servers clamp it to [2, 20] ticks unless configured otherwise.
  int session_timeout_ms = 4000;
  // Connect returns kUnavailable if no server accepts the session by then.
  int connect_timeout_ms = 10000;
  ZkSessionListener on_state;  // every change of state(); may be empty
  // Fires once per watch set by Get/Exists/Children(watch = true). A watch
  // set on a node is lost (never fires) if the session expires.
  ZkWatchListener on_watch;
  // Resume this session instead of making a new one.
  std::optional<ZkSessionCredentials> resume;
};

struct ZkStat {
  int32_t version = 0;          // of the data: what Set and Delete compare
  int32_t child_version = 0;    // changes when a child is added or removed
  int64_t ephemeral_owner = 0;  // the owning session's id; 0 if persistent
  int32_t num_children = 0;
  int64_t modified_zxid = 0;
};

struct ZkNode {
  std::string data;
  ZkStat stat;
};

enum class ZkCreateMode { kPersistent, kEphemeral, kPersistentSequential, kEphemeralSequential };

constexpr int32_t kZkAnyVersion = -1;

// One operation of a Multi.
struct ZkOp {
  enum class Type { kCreate, kSet, kDelete, kCheck };
  Type type = Type::kCheck;
  std::string path;
  std::string data;                               // kCreate, kSet
  ZkCreateMode mode = ZkCreateMode::kPersistent;  // kCreate
  int32_t version = kZkAnyVersion;                // kSet, kDelete, kCheck

  static ZkOp Create(std::string path, std::string data,
                     ZkCreateMode mode = ZkCreateMode::kPersistent);
  static ZkOp Set(std::string path, std::string data, int32_t expected_version);
  static ZkOp Delete(std::string path, int32_t expected_version);
  // Fails the whole Multi unless the node's data version is `version`.
  static ZkOp Check(std::string path, int32_t version);
};

struct ZkOpResult {
  std::string created_path;  // kCreate: the name the node got (sequential ones differ)
  ZkStat stat;               // kSet: the node after it
};

class ZkSession {
 public:
  // Starts a session and waits until it is connected (or kUnavailable after
  // options.connect_timeout_ms; kUnavailable too if `resume` names an
  // expired session).
  static Result<std::unique_ptr<ZkSession>> Connect(ZkSessionOptions options);
  // Closes the session: the servers drop its ephemeral nodes at once.
  // REQUIRES: no call on this session is in progress.
  ~ZkSession();

  ZkSessionState state() const { return state_.load(); }
  bool expired() const { return state() == ZkSessionState::kExpired; }
  // Waits until state() is `state`; false on timeout.
  bool WaitForState(ZkSessionState state, int timeout_ms) const;
  ZkSessionCredentials credentials() const;
  int64_t session_id() const { return credentials().id; }
  // The timeout the servers granted (valid while connected).
  int negotiated_timeout_ms() const;

  // Returns the created node's path (differs from `path` for sequential nodes).
  Result<std::string> Create(const std::string& path, const std::string& data,
                             ZkCreateMode mode = ZkCreateMode::kPersistent);
  // Creates `path` and its missing ancestors as empty persistent nodes; Ok if
  // it exists already.
  Status CreateAll(const std::string& path);
  Result<ZkNode> Get(const std::string& path, bool watch = false);
  // Compare-and-set: only if the node's version is expected_version
  // (kZkAnyVersion: any). Returns the node's new stat.
  Result<ZkStat> Set(const std::string& path, const std::string& data, int32_t expected_version);
  Status Delete(const std::string& path, int32_t expected_version);
  // nullopt if there is no such node; the watch (if asked) then fires on its creation.
  Result<std::optional<ZkStat>> Exists(const std::string& path, bool watch = false);
  // The children's names (not paths), sorted.
  Result<std::vector<std::string>> Children(const std::string& path, bool watch = false);
  // All of `ops` or none, atomically. On failure the Status is the first
  // failing op's (its index and path in the message), and nothing applied.
  Result<std::vector<ZkOpResult>> Multi(const std::vector<ZkOp>& ops);

  ZkSession(const ZkSession&) = delete;
  ZkSession& operator=(const ZkSession&) = delete;

 private:
  explicit ZkSession(ZkSessionOptions options);
  static void OnEvent(zhandle_t* zh, int type, int state, const char* path, void* context);
  void SetState(ZkSessionState state);
  // Fails fast when the handle cannot send (nothing would be sent).
  Status CheckUsable(const std::string& what) const;

  const ZkSessionOptions options_;
  zhandle_t* zh_ = nullptr;
  std::atomic<ZkSessionState> state_{ZkSessionState::kConnecting};
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;  // state_ changed; with mu_
};

}  // namespace pact
