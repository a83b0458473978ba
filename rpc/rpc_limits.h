// Bounded input for every Thrift read in Pact, servers and clients alike: a
// frame is read whole (with a deadline on the server) and refused if it is
// too big, and no size declared inside a frame is believed beyond the bytes
// the frame still holds, so one small frame cannot make a process allocate
// gigabytes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

namespace pact {

// The largest honest message is an execute result of many rows: 64 MiB holds
// ~1M rows of a few short columns. One value (a TEXT or BLOB, an SQL text)
// fits in 16 MiB; 1M elements is the most rows (or parameters) a result may
// hold. Pact's deepest type nests 4 levels (a reply holding rows of values);
// 64 leaves room and keeps a hostile nesting from exhausting the stack.
struct RpcLimits {
  int32_t max_frame_bytes = 64 << 20;
  int32_t max_string_bytes = 16 << 20;
  int32_t max_container_elements = 1 << 20;
  int max_nesting_depth = 64;
};

// Framed transport that reads one frame at a time and holds a message to it.
// A frame larger than the limit, or one that does not arrive within
// frame_timeout_ms of its first byte, is refused (CORRUPTED_DATA). While a
// message is being read, a read past the end of its frame is refused too;
// whatever a message leaves of its frame is dropped at readEnd().
class BoundedFramedTransport : public apache::thrift::transport::TFramedTransport {
 public:
  // socket: set only where frame_timeout_ms applies (servers); between frames
  // the socket's own receive timeout (the idle timeout) holds.
  BoundedFramedTransport(std::shared_ptr<apache::thrift::transport::TTransport> transport,
                         const RpcLimits& limits,
                         std::shared_ptr<apache::thrift::transport::TSocket> socket = nullptr,
                         int idle_timeout_ms = 0, int frame_timeout_ms = 0);

  // Bytes of the current frame not read yet.
  uint32_t FrameBytesLeft() const { return static_cast<uint32_t>(rBound_ - rBase_); }
  // True if bytes beyond the frames read so far were read from the socket
  // already (a peer that sent more than it was asked for).
  bool HasReadAhead() const { return ahead_begin_ < ahead_end_; }

  uint32_t readSlow(uint8_t* buf, uint32_t len) override;
  const uint8_t* borrowSlow(uint8_t* buf, uint32_t* len) override;
  uint32_t readEnd() override;

 protected:
  bool readFrame() override;

 private:
  using Clock = std::chrono::steady_clock;
  // Reads the rest of a frame by `deadline`; sets *deadline_set once the
  // socket's receive timeout was changed for it.
  void ReadFully(uint8_t* buf, uint32_t len, Clock::time_point deadline, bool* deadline_set);
  // Up to len bytes (0: end of file), from the read-ahead first. A short
  // read fills the read-ahead with one read of the socket, so that a small
  // frame costs one recv(2) for its size and body together, not two.
  uint32_t ReadSome(uint8_t* buf, uint32_t len);

  const int32_t max_frame_bytes_;
  const std::shared_ptr<apache::thrift::transport::TSocket> socket_;
  const int idle_timeout_ms_;
  const int frame_timeout_ms_;
  bool in_message_ = false;  // a frame was read and its message not finished
  std::unique_ptr<uint8_t[]> ahead_;  // allocated at the first short read
  uint32_t ahead_begin_ = 0;
  uint32_t ahead_end_ = 0;
};

// Binary protocol with strict (versioned) headers, string and container
// limits, and containers checked against the bytes left in the frame (every
// element takes at least one byte, so a list of N needs N bytes).
class BoundedBinaryProtocol : public apache::thrift::protocol::TBinaryProtocolT<
                                  apache::thrift::transport::TTransport> {
 public:
  BoundedBinaryProtocol(std::shared_ptr<BoundedFramedTransport> transport,
                        const RpcLimits& limits);

 protected:
  void checkReadBytesAvailable(apache::thrift::protocol::TSet& set) override;
  void checkReadBytesAvailable(apache::thrift::protocol::TList& list) override;
  void checkReadBytesAvailable(apache::thrift::protocol::TMap& map) override;

 private:
  void CheckElements(int32_t count, int min_element_bytes);
  BoundedFramedTransport* const frames_;
};

// True if `e` is a refusal by these limits (or a malformed frame), as opposed
// to a peer that went away or timed out between calls.
bool IsRefusedFrame(const std::exception& e);

// Frames refused by RPC clients of this process (servers count their own).
int64_t ClientFramesRefused();
// Counts `e` if IsRefusedFrame, with one log line per 10 s at most.
void NoteClientFailure(const std::exception& e);

// One log line per interval: true if the caller may log now.
class LogLimiter {
 public:
  bool Allow();

 private:
  std::atomic<int64_t> last_ms_{-kIntervalMs};
  static constexpr int64_t kIntervalMs = 10000;
};

}  // namespace pact
