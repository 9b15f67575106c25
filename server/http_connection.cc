#include "server/http_connection.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace weft {
namespace {

thread_local bool t_on_refusal_thread = false;

struct Endpoint {
  std::string ip;
  int port = -1;
};

// The numeric host and port of `addr`, spelled as httplib spells
// Request::remote_addr / local_addr (getnameinfo, NI_NUMERICHOST).
Endpoint ToEndpoint(const sockaddr_storage& addr, socklen_t length) {
  char host[NI_MAXHOST];
  char service[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), length, host,
                  sizeof(host), service, sizeof(service),
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return {};
  }
  return {host, std::atoi(service)};
}

bool Matches(int fd, const httplib::Request& request) {
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISSOCK(info.st_mode)) return false;
  sockaddr_storage addr;
  socklen_t length = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return false;
  }
  const Endpoint local = ToEndpoint(addr, length);
  if (local.port != request.local_port || local.ip != request.local_addr) {
    return false;
  }
  length = sizeof(addr);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    return false;
  }
  const Endpoint remote = ToEndpoint(addr, length);
  return remote.port == request.remote_port && remote.ip == request.remote_addr;
}

}  // namespace

WorkerPool::WorkerPool(int num_workers, int max_queued)
    : num_workers_(num_workers), max_queued_(static_cast<size_t>(max_queued)) {
  for (int i = 0; i < num_workers; ++i) workers_.emplace_back([this] { Work(); });
  refuser_ = std::thread([this] { Refuse(); });
}

WorkerPool::~WorkerPool() { shutdown(); }

bool WorkerPool::OnRefusalThread() { return t_on_refusal_thread; }

void WorkerPool::enqueue(std::function<void()> task) {
  absl::MutexLock lock(&mu_);
  // Connections being served plus those waiting, against the workers plus
  // the queue bound.
  if (running_ + queued_.size() <
      static_cast<size_t>(num_workers_) + max_queued_) {
    queued_.push_back(std::move(task));
  } else {
    refused_.push_back(std::move(task));
  }
}

bool WorkerPool::HasWork() const { return !queued_.empty() || shutting_down_; }

bool WorkerPool::HasRefusal() const {
  return !refused_.empty() || shutting_down_;
}

void WorkerPool::Work() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasWork));
      if (queued_.empty()) return;  // shutting down, nothing left
      task = std::move(queued_.front());
      queued_.pop_front();
      ++running_;
    }
    task();
    absl::MutexLock lock(&mu_);
    --running_;
  }
}

void WorkerPool::Refuse() {
  t_on_refusal_thread = true;
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &WorkerPool::HasRefusal));
      if (refused_.empty()) return;
      task = std::move(refused_.front());
      refused_.pop_front();
    }
    task();
  }
}

void WorkerPool::shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  if (refuser_.joinable()) refuser_.join();
}

PeerWatch::PeerWatch(const httplib::Request& request) {
  // httplib does not expose the socket; the calling worker owns it until
  // the request is done, so its number is stable while we use it.
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    if (Matches(static_cast<int>(fd), request)) {
      fd_ = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
}

bool PeerWatch::Closed() const {
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLIN | POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP | POLLNVAL)) return true;
  if (p.revents & POLLIN) {
    // Readable: either the client's next (pipelined) request or its EOF.
    char byte;
    const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 ||
           (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
  return false;
}

bool PeerWatch::SendAndShutDown(absl::string_view response) const {
  if (fd_ < 0) return false;
  bool sent = true;
  for (size_t done = 0; done < response.size();) {
    const ssize_t n =
        send(fd_, response.data() + done, response.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      sent = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  // The response, then FIN. What the client is still sending (the body) is
  // read and dropped for a little while before reads are shut too: a
  // socket closed with unread input answers with a reset, which would
  // destroy the response before the client reads it (RFC 9112 §9.6).
  shutdown(fd_, SHUT_WR);
  constexpr int kLingerMs = 1000;
  constexpr size_t kLingerBytes = 1 << 20;
  char sink[16384];
  size_t drained = 0;
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kLingerMs);
  while (drained < kLingerBytes) {
    const int left = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (left <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, left) <= 0) break;
    const ssize_t n = recv(fd_, sink, sizeof(sink), MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;  // the client's end, or an error
    drained += static_cast<size_t>(n);
  }
  shutdown(fd_, SHUT_RD);
  return sent;
}

}  // namespace weft
