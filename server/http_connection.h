// Threads and connections of the HTTP front end. cpp-httplib serves each
// connection on one worker thread for the connection's whole life (an open
// SSE stream, or an idle keep-alive connection waiting for its next
// request, holds its worker), so the workers are a bounded pool:
//
//   WorkerPool: `num_workers` threads; a connection that finds them all busy
//     waits in a FIFO of at most `max_queued` connections; one beyond that
//     goes to a single refusal thread, where the server answers its request
//     with 429 at once and closes it (HttpServer checks OnRefusalThread()).
//
//   PeerWatch: whether the client of the calling worker's connection has
//     closed it, so that a request whose client left is cancelled even
//     while no bytes are being written to it.
#ifndef WEFT_SERVER_HTTP_CONNECTION_H_
#define WEFT_SERVER_HTTP_CONNECTION_H_

#include <httplib.h>

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace weft {

class WorkerPool : public httplib::TaskQueue {
 public:
  WorkerPool(int num_workers, int max_queued);
  ~WorkerPool() override;

  // Called by httplib's accept loop with the task serving one connection.
  void enqueue(std::function<void()> task) override;
  // Runs what is queued, then joins every thread.
  void shutdown() override;

  // True on the refusal thread: the current connection is to be refused.
  static bool OnRefusalThread();

 private:
  void Work();
  void Refuse();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasRefusal() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  const int num_workers_;
  const size_t max_queued_;
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;  // tasks on a worker now
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> queued_ ABSL_GUARDED_BY(mu_);
  // Bounded by the number of open sockets: each entry holds one.
  std::deque<std::function<void()>> refused_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
  std::thread refuser_;
};

class PeerWatch {
 public:
  // Finds the socket of `request`'s connection (the one the calling worker
  // serves) by its local and remote addresses.
  explicit PeerWatch(const httplib::Request& request);

  // True once the client closed or reset the connection. Never true when
  // the socket was not found.
  bool Closed() const;
  bool found() const { return fd_ >= 0; }
  // Sends `response` (a whole HTTP response) on the connection and shuts
  // it in both directions: whatever the client sent after the request's
  // headers (a body it was refused) can never be answered as a request of
  // its own, which behind a keep-alive proxy would be request smuggling.
  // Between the two, up to 1 s / 1 MiB of the client's input is read and
  // dropped, so that closing does not reset the connection under the
  // response. httplib's own response then goes nowhere (it ignores
  // SIGPIPE) and it closes the socket. False when the socket was not found
  // or the send failed.
  bool SendAndShutDown(absl::string_view response) const;

 private:
  int fd_ = -1;
};

}  // namespace weft

#endif  // WEFT_SERVER_HTTP_CONNECTION_H_
