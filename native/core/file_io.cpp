#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace mood {

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

at::Tensor empty_prefaulted(int64_t numel, at::ScalarType dtype, int64_t min_bytes) {
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(dtype));
  if (bytes < min_bytes) return at::empty({numel}, at::TensorOptions().dtype(dtype));
  const size_t len = static_cast<size_t>(bytes);
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return at::empty({numel}, at::TensorOptions().dtype(dtype));
  // The tensor owns the mapping: it is unmapped when the last view of the storage goes. Such a
  // storage cannot be resized in place (from_blob), which nothing does to a filled buffer.
  return at::from_blob(
      p, {numel}, [len](void* q) { ::munmap(q, len); }, at::TensorOptions().dtype(dtype));
}

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
  at::Tensor t = empty_prefaulted(numel, dtype, kPrefaultStorageBytes);
  char* dst = static_cast<char*>(t.data_ptr());
  int64_t left = numel * elem, off = byte_offset;
  while (left > 0) {
    ssize_t n = ::pread(f.fd, dst, static_cast<size_t>(std::min<int64_t>(left, 1 << 30)), off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(path + ": read failed at offset " + std::to_string(off) + ": " + (n == 0 ? "unexpected end of file" : std::strerror(errno)));
    dst += n;
    off += n;
    left -= n;
  }
  return t;
}

}  // namespace mood
