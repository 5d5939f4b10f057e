#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace mood {

namespace {
// Reads [offset, offset + bytes) of fd into dst; throws naming the file and offset.
void pread_all(int fd, const std::string& path, char* dst, int64_t bytes, int64_t offset) {
  while (bytes > 0) {
    ssize_t n = ::pread(fd, dst, static_cast<size_t>(std::min<int64_t>(bytes, 1 << 30)), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(path + ": read failed at offset " + std::to_string(offset) + ": " + (n == 0 ? "unexpected end of file" : std::strerror(errno)));
    dst += n;
    offset += n;
    bytes -= n;
  }
}

// Loading a checkpoint is bound by the first-touch page faults of fresh tensor memory (the kernel
// zeroes every page during pread), not by the copy from the page cache, so large storages are read
// in chunks by the calling thread plus persistent helper threads. Chunks are claimed one at a time:
// a helper that the OS does not schedule (a loaded machine) costs at most the chunk it holds — the
// caller takes every other chunk itself — unlike a fork-join split, which waits for the slowest part.
class ChunkedReader {
 public:
  static ChunkedReader& instance() {
    static auto* r = new ChunkedReader();  // threads live for the process, like the executors
    return *r;
  }

  void read(int fd, const std::string& path, char* dst, int64_t bytes, int64_t offset) {
    const int64_t chunks = (bytes + kChunk - 1) / kChunk;
    if (helpers_.empty() || chunks < 4) return pread_all(fd, path, dst, bytes, offset);
    std::lock_guard<std::mutex> one_job(job_mutex_);  // one large read at a time (per process)
    {
      std::lock_guard<std::mutex> lock(m_);
      job_ = Job{fd, &path, dst, bytes, offset, chunks};
      next_.store(0);
      active_ = 0;
      error_.clear();
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(m_);
    done_cv_.wait(lock, [&] { return active_ == 0; });
    job_.chunks = 0;  // helpers that wake late find nothing to do
    if (!error_.empty()) throw std::runtime_error(error_);
  }

 private:
  static constexpr int64_t kChunk = int64_t(4) << 20;
  struct Job {
    int fd = -1;
    const std::string* path = nullptr;
    char* dst = nullptr;
    int64_t bytes = 0, offset = 0, chunks = 0;
  };

  ChunkedReader() {
    // MOOD_IO_THREADS: threads per large read, the caller included (default: cores, at most 4).
    unsigned n = std::thread::hardware_concurrency();
    if (const char* e = std::getenv("MOOD_IO_THREADS")) n = static_cast<unsigned>(std::max(1, std::atoi(e)));
    unsigned helpers = n > 1 ? std::min(n - 1, 3u) : 0u;
    for (unsigned i = 0; i < helpers; ++i) helpers_.emplace_back([this] { loop(); });
    for (auto& t : helpers_) t.detach();
  }

  // Claims and reads chunks until none are left. Called with the job published.
  void work() {
    Job j;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (job_.chunks == 0) return;
      j = job_;
      ++active_;
    }
    for (int64_t c; (c = next_.fetch_add(1)) < j.chunks;) {
      const int64_t begin = c * kChunk, len = std::min(kChunk, j.bytes - begin);
      try {
        pread_all(j.fd, *j.path, j.dst + begin, len, j.offset + begin);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(m_);
        if (error_.empty()) error_ = e.what();
        next_.store(j.chunks);  // stop the others
      }
    }
    std::lock_guard<std::mutex> lock(m_);
    if (--active_ == 0) done_cv_.notify_all();
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
      }
      work();
    }
  }

  std::mutex job_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  Job job_;
  std::atomic<int64_t> next_{0};
  int active_ = 0;
  uint64_t generation_ = 0;
  std::string error_;
  std::vector<std::thread> helpers_;
};

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

at::Tensor read_storage(const std::string& path, int64_t byte_offset, int64_t numel, at::ScalarType dtype) {
  if (byte_offset < 0 || numel < 0) throw std::runtime_error(path + ": negative offset or size");
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw std::runtime_error(path + ": cannot open: " + std::strerror(errno));
  struct stat st;
  if (::fstat(f.fd, &st) != 0) throw std::runtime_error(path + ": cannot stat: " + std::strerror(errno));
  const int64_t elem = static_cast<int64_t>(c10::elementSize(dtype));
  // Check against the file size before allocating: a hostile header must not make us allocate.
  if (numel > (static_cast<int64_t>(st.st_size) / (elem ? elem : 1)) + 1 ||
      byte_offset > static_cast<int64_t>(st.st_size) || numel * elem > static_cast<int64_t>(st.st_size) - byte_offset) {
    throw std::runtime_error(path + ": storage of " + std::to_string(numel) + " x " + std::to_string(elem) +
                             " bytes at offset " + std::to_string(byte_offset) + " runs past the end of the file (" +
                             std::to_string(static_cast<int64_t>(st.st_size)) + " bytes)");
  }
  at::Tensor t = at::empty({numel}, at::TensorOptions().dtype(dtype));
  ChunkedReader::instance().read(f.fd, path, static_cast<char*>(t.data_ptr()), numel * elem, byte_offset);
  return t;
}

}  // namespace mood
