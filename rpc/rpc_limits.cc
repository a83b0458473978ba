#include "rpc/rpc_limits.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>

#include <glog/logging.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TProtocolException.h>

namespace pact {

using apache::thrift::TConfiguration;
using apache::thrift::protocol::TProtocolException;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TSocket;
using apache::thrift::transport::TTransport;
using apache::thrift::transport::TTransportException;

namespace {

// A big read buffer is given back after its message rather than kept by an
// idle connection.
constexpr uint32_t kKeepBufferBytes = 1 << 20;
// Holds any request or reply of a transfer (a few hundred bytes) whole;
// longer reads go straight into the frame's buffer.
constexpr uint32_t kReadAheadBytes = 8 << 10;

std::shared_ptr<TConfiguration> Configuration(const RpcLimits& limits) {
  return std::make_shared<TConfiguration>(limits.max_frame_bytes, limits.max_frame_bytes,
                                          limits.max_nesting_depth);
}

std::atomic<int64_t> client_frames_refused{0};
LogLimiter client_log_limiter;

}  // namespace

bool LogLimiter::Allow() {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ms_.load(std::memory_order_relaxed);
  return now - last >= kIntervalMs && last_ms_.compare_exchange_strong(last, now);
}

BoundedFramedTransport::BoundedFramedTransport(std::shared_ptr<TTransport> transport,
                                               const RpcLimits& limits,
                                               std::shared_ptr<TSocket> socket,
                                               int idle_timeout_ms, int frame_timeout_ms)
    : TFramedTransport(std::move(transport), DEFAULT_BUFFER_SIZE, kKeepBufferBytes,
                       Configuration(limits)),
      max_frame_bytes_(limits.max_frame_bytes),
      socket_(std::move(socket)),
      idle_timeout_ms_(idle_timeout_ms),
      frame_timeout_ms_(frame_timeout_ms) {}

uint32_t BoundedFramedTransport::readSlow(uint8_t* buf, uint32_t len) {
  if (in_message_) {
    throw TProtocolException(TProtocolException::INVALID_DATA,
                             "message runs past the end of its frame");
  }
  return TFramedTransport::readSlow(buf, len);
}

const uint8_t* BoundedFramedTransport::borrowSlow(uint8_t* buf, uint32_t* len) {
  // Only a string longer than the rest of its frame gets here: refused
  // before the protocol allocates the declared size.
  if (in_message_) {
    throw TProtocolException(TProtocolException::SIZE_LIMIT,
                             "string of " + std::to_string(*len) + " bytes in a frame with " +
                                 std::to_string(FrameBytesLeft()) + " left");
  }
  return TFramedTransport::borrowSlow(buf, len);
}

uint32_t BoundedFramedTransport::readEnd() {
  uint32_t bytes = TFramedTransport::readEnd();
  in_message_ = false;
  setReadBuffer(rBuf_.get(), 0);  // a message is one frame: drop any trailing bytes
  return bytes;
}

bool BoundedFramedTransport::readFrame() {
  uint8_t size_bytes[4];
  // Between frames: the socket's receive timeout (the idle timeout) applies.
  uint32_t got = ReadSome(size_bytes, sizeof(size_bytes));
  if (got == 0) return false;  // closed between frames
  auto deadline = Clock::now() + std::chrono::milliseconds(frame_timeout_ms_);
  bool deadline_set = false;
  ReadFully(size_bytes + got, sizeof(size_bytes) - got, deadline, &deadline_set);
  uint32_t network_order;
  std::memcpy(&network_order, size_bytes, sizeof(network_order));
  int32_t size = static_cast<int32_t>(ntohl(network_order));
  if (size <= 0 || size > max_frame_bytes_) {
    throw TTransportException(TTransportException::CORRUPTED_DATA,
                              "frame of " + std::to_string(size) + " bytes (limit " +
                                  std::to_string(max_frame_bytes_) + ")");
  }
  if (static_cast<uint32_t>(size) > rBufSize_) {
    rBuf_.reset(new uint8_t[size]);
    rBufSize_ = size;
  }
  ReadFully(rBuf_.get(), size, deadline, &deadline_set);
  if (deadline_set) socket_->setRecvTimeout(idle_timeout_ms_);
  setReadBuffer(rBuf_.get(), size);
  in_message_ = true;
  return true;
}

uint32_t BoundedFramedTransport::ReadSome(uint8_t* buf, uint32_t len) {
  if (ahead_begin_ == ahead_end_) {
    if (len >= kReadAheadBytes) return transport_->read(buf, len);
    if (!ahead_) ahead_.reset(new uint8_t[kReadAheadBytes]);
    ahead_begin_ = 0;
    ahead_end_ = 0;
    ahead_end_ = transport_->read(ahead_.get(), kReadAheadBytes);
    if (ahead_end_ == 0) return 0;
  }
  uint32_t n = std::min(len, ahead_end_ - ahead_begin_);
  std::memcpy(buf, ahead_.get() + ahead_begin_, n);
  ahead_begin_ += n;
  return n;
}

void BoundedFramedTransport::ReadFully(uint8_t* buf, uint32_t len, Clock::time_point deadline,
                                       bool* deadline_set) {
  while (len > 0) {
    // Only a read that goes to the socket needs the deadline: most frames
    // are in the read-ahead whole, and cost no setsockopt(2) at all.
    if (socket_ && frame_timeout_ms_ > 0 && !HasReadAhead()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        throw TTransportException(TTransportException::CORRUPTED_DATA,
                                  "frame not complete within " +
                                      std::to_string(frame_timeout_ms_) + " ms");
      }
      socket_->setRecvTimeout(static_cast<int>(left.count()));
      *deadline_set = true;
    }
    uint32_t n = 0;
    try {
      n = ReadSome(buf, len);
    } catch (const TTransportException& e) {
      if (e.getType() != TTransportException::TIMED_OUT || !socket_) throw;
      throw TTransportException(TTransportException::CORRUPTED_DATA,
                                "frame not complete within " +
                                    std::to_string(frame_timeout_ms_) + " ms");
    }
    if (n == 0) throw TTransportException(TTransportException::END_OF_FILE, "closed mid-frame");
    buf += n;
    len -= n;
  }
}

BoundedBinaryProtocol::BoundedBinaryProtocol(std::shared_ptr<BoundedFramedTransport> transport,
                                             const RpcLimits& limits)
    : TBinaryProtocolT(transport, limits.max_string_bytes, limits.max_container_elements,
                       /*strict_read=*/true, /*strict_write=*/true),
      frames_(transport.get()) {}

void BoundedBinaryProtocol::CheckElements(int32_t count, int min_element_bytes) {
  // readXBegin has checked count against 0 and the container limit already.
  int64_t needed = static_cast<int64_t>(count) * std::max(1, min_element_bytes);
  if (needed > frames_->FrameBytesLeft()) {
    throw TProtocolException(TProtocolException::SIZE_LIMIT,
                             "container of " + std::to_string(count) + " elements in a frame with " +
                                 std::to_string(frames_->FrameBytesLeft()) + " bytes left");
  }
}

void BoundedBinaryProtocol::checkReadBytesAvailable(apache::thrift::protocol::TSet& set) {
  CheckElements(set.size_, getMinSerializedSize(set.elemType_));
}

void BoundedBinaryProtocol::checkReadBytesAvailable(apache::thrift::protocol::TList& list) {
  CheckElements(list.size_, getMinSerializedSize(list.elemType_));
}

void BoundedBinaryProtocol::checkReadBytesAvailable(apache::thrift::protocol::TMap& map) {
  CheckElements(map.size_, getMinSerializedSize(map.keyType_) + getMinSerializedSize(map.valueType_));
}

bool IsRefusedFrame(const std::exception& e) {
  if (dynamic_cast<const TProtocolException*>(&e) != nullptr) return true;
  const auto* transport = dynamic_cast<const TTransportException*>(&e);
  return transport != nullptr && transport->getType() == TTransportException::CORRUPTED_DATA;
}

int64_t ClientFramesRefused() { return client_frames_refused.load(); }

void NoteClientFailure(const std::exception& e) {
  if (!IsRefusedFrame(e)) return;
  int64_t total = ++client_frames_refused;
  if (client_log_limiter.Allow()) {
    LOG(WARNING) << "refused a reply frame: " << e.what() << " (" << total << " so far)";
  }
}

}  // namespace pact
