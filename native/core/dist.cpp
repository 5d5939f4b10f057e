// c10d process groups, collectives and bucketed gradient averaging (see dist.h).
#include "core/dist.h"

#include <torch/version.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

// Backends are compiled in on our own build checks, not on libtorch's USE_C10D_* alone: its CMake
// target may define USE_C10D_GLOO (Debian does) / USE_C10D_NCCL for consumers even when the
// gloo headers (libgloo-dev) or nccl.h that c10d's headers include are not installed.
// c10d's Gloo header compiles only under USE_C10D_GLOO, so define it when we have the headers.
#if defined(MOOD_HAVE_GLOO_HEADERS)
#define MOOD_DIST_GLOO 1
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#endif
#if defined(USE_C10D_NCCL) && defined(MOOD_HAVE_NCCL)
#define MOOD_DIST_NCCL 1
#endif
#if defined(MOOD_DIST_GLOO) || defined(MOOD_DIST_NCCL)
#define MOOD_HAVE_C10D 1
#endif

#ifdef MOOD_HAVE_C10D
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MOOD_DIST_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef MOOD_DIST_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

namespace mood {
namespace dist {

ReduceOp parse_reduce_op(const std::string& name) {
  if (name == "sum") return ReduceOp::Sum;
  if (name == "avg" || name == "mean") return ReduceOp::Avg;
  if (name == "max") return ReduceOp::Max;
  if (name == "min") return ReduceOp::Min;
  throw std::invalid_argument("unknown reduce op '" + name + "' (expected sum, avg, max or min)");
}

bool gloo_available() {
#ifdef MOOD_DIST_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef MOOD_DIST_NCCL
  return true;
#else
  return false;
#endif
}

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The first line of a c10d/gloo message, without the source location prefix "[file:line] ".
std::string first_line(const std::string& s) {
  std::string l = s.substr(0, s.find('\n'));
  if (!l.empty() && l[0] == '[') {
    size_t e = l.find("] ");
    if (e != std::string::npos && e < 200) l = l.substr(e + 2);
  }
  return l;
}

std::string error_text(const std::exception& e) {
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) return first_line(ce->what_without_backtrace());
  return first_line(e.what());
}

std::string join_ranks(const std::vector<int>& r) {
  std::string s;
  for (size_t i = 0; i < r.size(); ++i) s += (i ? ", " : "") + std::to_string(r[i]);
  return s;
}

}  // namespace

at::Tensor all_gather_interleaved(Group& g, const at::Tensor& t, int64_t total) {
  if (total < 0) throw std::invalid_argument("allGatherOrdered: total must be >= 0");
  std::vector<at::Tensor> parts = g.all_gather(t);
  const int64_t w = static_cast<int64_t>(parts.size());
  int64_t rows = 0;
  for (auto& p : parts) rows += p.size(0);
  if (rows < total)
    throw std::invalid_argument("allGatherOrdered: the ranks hold " + std::to_string(rows) + " rows together, fewer than the " +
                                std::to_string(total) + " dataset rows asked for (was the sampler distributed over " + std::to_string(w) +
                                " ranks?)");
  // Row j of rank r is dataset index j*W + r: pad every part to the longest, interleave, cut.
  int64_t max_rows = 0;
  for (int64_t r = 0; r < w; ++r) {
    const int64_t need = total > r ? (total - r + w - 1) / w : 0;
    if (parts[r].size(0) < need)
      throw std::invalid_argument("allGatherOrdered: rank " + std::to_string(r) + " has " + std::to_string(parts[r].size(0)) +
                                  " rows, the " + std::to_string(total) + " dataset rows need " + std::to_string(need) +
                                  " there (rows must follow DistributedSampler's rank-strided order)");
    max_rows = std::max(max_rows, parts[r].size(0));
  }
  for (auto& p : parts) {
    if (p.size(0) < max_rows) {
      std::vector<int64_t> pad = p.sizes().vec();
      pad[0] = max_rows - p.size(0);
      p = at::cat({p, at::zeros(pad, p.options())});
    }
  }
  std::vector<int64_t> shape = t.sizes().vec();
  shape[0] = max_rows * w;
  return at::stack(parts, 1).reshape(shape).narrow(0, 0, total).contiguous();
}

#ifndef MOOD_HAVE_C10D

std::shared_ptr<Group> Group::create(const GroupOptions&) {
  throw std::runtime_error(
      "distributed: this build has no c10d process group (the Gloo headers were not found when it was "
      "built: install libgloo-dev and rebuild with `npm run build:native`)");
}

std::shared_ptr<GradientSync> make_gradient_sync(std::shared_ptr<Group>, const GradSyncOptions&) {
  throw std::runtime_error("distributed: this build has no c10d process group");
}

GradSyncStats gradient_sync_stats(const GradientSync&) { return {}; }

#else  // MOOD_HAVE_C10D

namespace {

#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;  // 2.x: ProcessGroupGloo/NCCL are Backends of a ProcessGroup
#else
using PgBase = c10d::ProcessGroup;
#endif

// The local address this host uses to reach `host` (the interface Gloo should bind to): a
// connected UDP socket sends nothing but makes the kernel choose the route.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res) {
    throw std::runtime_error("distributed: cannot resolve MASTER_ADDR '" + host + "'");
  }
  std::string out;
  for (addrinfo* a = res; a && out.empty(); a = a->ai_next) {
    int fd = ::socket(a->ai_family, SOCK_DGRAM, 0);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      sockaddr_storage ss{};
      socklen_t len = sizeof(ss);
      if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
        char buf[INET6_ADDRSTRLEN] = {0};
        const void* src = ss.ss_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&ss)->sin_addr)
                                                  : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr);
        if (inet_ntop(ss.ss_family, src, buf, sizeof(buf))) out = buf;
      }
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  if (out.empty()) throw std::runtime_error("distributed: no route from this host to MASTER_ADDR '" + host + "'");
  return out;
}

class C10dGroup : public Group, public std::enable_shared_from_this<C10dGroup> {
 public:
  explicit C10dGroup(const GroupOptions& o) : opts_(o) {}
  ~C10dGroup() override { shutdown(); }

  void init();

  int rank() const override { return opts_.rank; }
  int world_size() const override { return opts_.world_size; }
  const GroupOptions& options() const override { return opts_; }

  at::Tensor all_reduce(const at::Tensor& t, ReduceOp op) override;
  at::Tensor broadcast(const at::Tensor& t, int src) override;
  std::vector<at::Tensor> all_gather(const at::Tensor& t) override;
  void barrier() override;
  std::unique_ptr<Pending> all_reduce_async(at::Tensor& t) override;
  void broadcast_inplace(std::vector<at::Tensor>& ts, int src) override;
  void shutdown() override;

  // Waits for a c10d work item; on failure names the lost rank(s) when the heartbeats tell.
  void wait_work(const c10::intrusive_ptr<c10d::Work>& w, const std::string& op);
  [[noreturn]] void fail(const std::string& op, const std::string& cause);

 private:
  std::string store_addr() const { return opts_.master_addr + ":" + std::to_string(opts_.master_port); }
  c10::intrusive_ptr<c10d::TCPStore> connect_store(bool server);
  void check_membership();
  // Throws the world-size mismatch error, after letting the `present` ranks that joined see it too.
  [[noreturn]] void fail_mismatch(int other, const std::string& theirs, int present);
  void heartbeat_loop();
  std::vector<int> lost_ranks();
  c10::intrusive_ptr<PgBase> pg() {
    if (!pg_ || stopped_) throw std::runtime_error("distributed: process group used after shutdown()");
    return pg_;
  }
  // dtype code, ndim and up to 8 dims of every rank, so shape mismatches fail clearly instead of
  // corrupting memory or hanging.
  at::Tensor gather_meta(const at::Tensor& t, const std::string& op);

  GroupOptions opts_;
  c10::intrusive_ptr<c10d::TCPStore> store_;
  c10::intrusive_ptr<c10d::TCPStore> hb_store_;  // the heartbeat thread's own connection
  c10::intrusive_ptr<PgBase> pg_;
  std::mutex hb_mu_;  // guards hb_store_
  std::condition_variable hb_cv_;
  std::thread hb_thread_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> store_lost_{false};
};

constexpr auto kHeartbeat = std::chrono::milliseconds(250);

c10::intrusive_ptr<c10d::TCPStore> C10dGroup::connect_store(bool server) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(opts_.master_port);
  so.isServer = server;
  so.numWorkers = c10::nullopt;  // membership is checked below, with errors naming the ranks
  so.waitWorkers = false;
  so.timeout = opts_.timeout;
  try {
    return c10::make_intrusive<c10d::TCPStore>(opts_.master_addr, so);
  } catch (const std::exception& e) {
    std::string m = error_text(e);
    std::string lower = m;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (server && (lower.find("address already in use") != std::string::npos || lower.find("failed to listen") != std::string::npos ||
                   lower.find("eaddrinuse") != std::string::npos)) {
      throw std::runtime_error("distributed: rank 0 cannot host the rendezvous store: MASTER_PORT " + std::to_string(opts_.master_port) +
                               " is already in use on this host (another job? pick a free --master_port). (" + m + ")");
    }
    if (lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos ||
        lower.find("connection refused") != std::string::npos) {
      throw std::runtime_error("distributed: rank " + std::to_string(opts_.rank) + " cannot reach the master at " + store_addr() +
                               " within " + std::to_string(opts_.timeout.count() / 1000.0).substr(0, 5) +
                               " s (is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?). (" + m + ")");
    }
    throw std::runtime_error("distributed: rendezvous at " + store_addr() + " failed: " + m);
  }
}

void C10dGroup::fail_mismatch(int other, const std::string& theirs, int present) {
  const std::string msg = "distributed: world size mismatch: rank " + std::to_string(other) + " has WORLD_SIZE=" + theirs + ", rank " +
                          std::to_string(opts_.rank) + " has WORLD_SIZE=" + std::to_string(opts_.world_size) +
                          " (every process must be started with the same world size)";
  // Rank 0 hosts the store: leaving at once would take it away from ranks that have not compared
  // yet, and they would report a lost connection instead of this. Every rank that sees the mismatch
  // counts itself; rank 0 waits (at most 2 s) until the ranks that joined have.
  try {
    store_->add("mood/mismatch_seen", 1);
    const auto until = Clock::now() + std::chrono::seconds(2);
    while (opts_.rank == 0 && Clock::now() < until && store_->add("mood/mismatch_seen", 0) < present)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } catch (const std::exception&) {
    // The store is already gone: the message below is still the right one.
  }
  throw std::runtime_error(msg);
}

void C10dGroup::check_membership() {
  const int r = opts_.rank, n = opts_.world_size;
  const std::string ws = std::to_string(n);
  int64_t taken = store_->add("mood/rank/" + std::to_string(r), 1);
  store_->set("mood/ws/" + std::to_string(r), std::vector<uint8_t>(ws.begin(), ws.end()));
  if (taken > 1) {
    throw std::runtime_error("distributed: rank " + std::to_string(r) + " joined twice (two processes with RANK=" + std::to_string(r) +
                             "? each process needs its own RANK in 0.." + std::to_string(n - 1) + ")");
  }
  // Poll instead of Store::wait so that a timeout can say which ranks never came.
  const auto deadline = Clock::now() + opts_.timeout;
  std::vector<int> missing;
  for (;;) {
    missing.clear();
    for (int i = 0; i < n; ++i)
      if (!store_->check({"mood/ws/" + std::to_string(i)})) missing.push_back(i);
    if (missing.empty()) break;
    // A rank that believes the world is smaller than ours may already be waiting on us: compare
    // what has arrived so far so that a mismatch fails now, not at the timeout.
    for (int i = 0; i < n; ++i) {
      if (std::find(missing.begin(), missing.end(), i) != missing.end()) continue;
      auto v = store_->get("mood/ws/" + std::to_string(i));
      std::string theirs(v.begin(), v.end());
      if (theirs != ws)
        fail_mismatch(i, theirs, n - static_cast<int>(missing.size()));
    }
    if (Clock::now() > deadline) {
      throw std::runtime_error("distributed: rank(s) " + join_ranks(missing) + " did not join the group at " + store_addr() + " within " +
                               std::to_string(opts_.timeout.count() / 1000) + " s (WORLD_SIZE=" + ws +
                               ": are all processes started, with the right WORLD_SIZE?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < n; ++i) {
    auto v = store_->get("mood/ws/" + std::to_string(i));
    std::string theirs(v.begin(), v.end());
    if (theirs != ws) fail_mismatch(i, theirs, n);
  }
  // A rank with RANK >= our WORLD_SIZE is not seen above; it fails on its own (rank range check).
}

void C10dGroup::init() {
  if (opts_.world_size < 1) throw std::invalid_argument("distributed: WORLD_SIZE must be >= 1, got " + std::to_string(opts_.world_size));
  if (opts_.rank < 0 || opts_.rank >= opts_.world_size)
    throw std::invalid_argument("distributed: RANK " + std::to_string(opts_.rank) + " is outside 0.." + std::to_string(opts_.world_size - 1) +
                                " (WORLD_SIZE=" + std::to_string(opts_.world_size) + ")");
  if (opts_.master_port < 1 || opts_.master_port > 65535)
    throw std::invalid_argument("distributed: MASTER_PORT must be in 1..65535, got " + std::to_string(opts_.master_port));
  if (opts_.timeout.count() <= 0) throw std::invalid_argument("distributed: timeout must be positive");
  store_ = connect_store(opts_.rank == 0);
  check_membership();
  hb_store_ = connect_store(false);
  hb_thread_ = std::thread([this] { heartbeat_loop(); });

  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("mood/pg", store_);
  try {
    if (opts_.backend == "gloo") {
#ifdef MOOD_DIST_GLOO
      auto o = c10d::ProcessGroupGloo::Options::create(opts_.timeout);
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      if (ifname && *ifname) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(local_address_towards(opts_.master_addr, opts_.master_port)));
      }
      o->threads = 2;
      pg_ = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, opts_.rank, opts_.world_size, o);
#else
      throw std::runtime_error("this build has no Gloo backend (install libgloo-dev and rebuild)");
#endif
    } else if (opts_.backend == "nccl") {
#ifdef MOOD_DIST_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = opts_.timeout;
      pg_ = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, opts_.rank, opts_.world_size, o);
#else
      throw std::runtime_error("this libtorch has no NCCL backend (build against a CUDA PyTorch/libtorch with NCCL)");
#endif
    } else {
      throw std::invalid_argument("unknown backend '" + opts_.backend + "' (expected gloo or nccl)");
    }
  } catch (const std::exception& e) {
    std::string m = error_text(e);
    shutdown();
    throw std::runtime_error("distributed: rank " + std::to_string(opts_.rank) + ": " + opts_.backend + " process group setup failed: " + m);
  }
}

void C10dGroup::heartbeat_loop() {
  const std::string key = "mood/hb/" + std::to_string(opts_.rank);
  std::unique_lock<std::mutex> lock(hb_mu_);
  while (!stopped_) {
    try {
      hb_store_->add(key, 1);
    } catch (const std::exception&) {
      store_lost_ = true;  // rank 0 (the store host) is gone
      return;
    }
    hb_cv_.wait_for(lock, kHeartbeat, [this] { return stopped_.load(); });
  }
}

std::vector<int> C10dGroup::lost_ranks() {
  std::vector<int> lost;
  if (store_lost_ && opts_.rank != 0) return {0};
  auto read = [this](std::vector<int64_t>& v) {
    std::lock_guard<std::mutex> lock(hb_mu_);
    for (int i = 0; i < opts_.world_size; ++i) v[i] = hb_store_->add("mood/hb/" + std::to_string(i), 0);
  };
  std::vector<int64_t> a(opts_.world_size), b(opts_.world_size);
  try {
    read(a);
    std::this_thread::sleep_for(kHeartbeat * 5);
    read(b);
    for (int i = 0; i < opts_.world_size; ++i) {
      if (i == opts_.rank || b[i] != a[i]) continue;
      std::lock_guard<std::mutex> lock(hb_mu_);
      if (!hb_store_->check({"mood/bye/" + std::to_string(i)})) lost.push_back(i);
    }
  } catch (const std::exception&) {
    if (opts_.rank != 0) return {0};
  }
  return lost;
}

void C10dGroup::fail(const std::string& op, const std::string& cause) {
  std::vector<int> lost = stopped_ ? std::vector<int>{} : lost_ranks();
  std::string m = "distributed: " + op + " failed on rank " + std::to_string(opts_.rank);
  if (!lost.empty()) {
    m += ": lost rank " + join_ranks(lost) + (lost.size() == 1 && lost[0] == 0 && opts_.rank != 0 ? " (it hosts the rendezvous store)" : "") +
         " — its process exited or stopped responding";
  }
  m += " (" + cause + ")";
  throw std::runtime_error(m);
}

void C10dGroup::wait_work(const c10::intrusive_ptr<c10d::Work>& w, const std::string& op) {
  try {
    w->wait(opts_.timeout);
  } catch (const std::exception& e) {
    fail(op, error_text(e));
  }
}

at::Tensor C10dGroup::gather_meta(const at::Tensor& t, const std::string& op) {
  if (t.dim() > 8) throw std::invalid_argument("distributed: " + op + ": at most 8 dimensions");
  at::Tensor m = at::full({10}, -1, at::kLong);
  auto a = m.accessor<int64_t, 1>();
  a[0] = static_cast<int64_t>(t.scalar_type());
  a[1] = t.dim();
  for (int64_t d = 0; d < t.dim(); ++d) a[2 + d] = t.size(d);
  std::vector<at::Tensor> in{t.is_cuda() ? m.to(t.device()) : m};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < opts_.world_size; ++i) out[0].push_back(at::empty_like(in[0]));
  wait_work(pg()->allgather(out, in), op);
  return at::stack(out[0]).cpu();
}

at::Tensor C10dGroup::all_reduce(const at::Tensor& t, ReduceOp op) {
  if (op == ReduceOp::Avg && !at::isFloatingType(t.scalar_type()))
    throw std::invalid_argument("distributed: allReduce avg needs a floating-point tensor, got " + std::string(c10::toString(t.scalar_type())));
  at::Tensor meta = gather_meta(t, "allReduce");
  for (int i = 0; i < opts_.world_size; ++i)
    if (!meta[i].equal(meta[opts_.rank]))
      throw std::invalid_argument("distributed: allReduce: rank " + std::to_string(i) + " passed a tensor of another dtype/shape than rank " +
                                  std::to_string(opts_.rank));
  at::Tensor x = t.contiguous().clone();
  std::vector<at::Tensor> v{x};
  c10d::AllreduceOptions o;
  o.reduceOp = op == ReduceOp::Max ? c10d::ReduceOp::MAX : op == ReduceOp::Min ? c10d::ReduceOp::MIN : c10d::ReduceOp::SUM;
  o.timeout = opts_.timeout;
  wait_work(pg()->allreduce(v, o), "allReduce");
  if (op == ReduceOp::Avg) x.div_(opts_.world_size);
  return x;
}

at::Tensor C10dGroup::broadcast(const at::Tensor& t, int src) {
  if (src < 0 || src >= opts_.world_size)
    throw std::invalid_argument("distributed: broadcast source rank " + std::to_string(src) + " is outside 0.." + std::to_string(opts_.world_size - 1));
  at::Tensor meta = gather_meta(t, "broadcast");
  for (int i = 0; i < opts_.world_size; ++i)
    if (!meta[i].equal(meta[src]))
      throw std::invalid_argument("distributed: broadcast: rank " + std::to_string(i) + " passed a tensor of another dtype/shape than the source rank " +
                                  std::to_string(src));
  at::Tensor x = t.contiguous().clone();
  std::vector<at::Tensor> v{x};
  c10d::BroadcastOptions o;
  o.rootRank = src;
  o.timeout = opts_.timeout;
  wait_work(pg()->broadcast(v, o), "broadcast");
  return x;
}

std::vector<at::Tensor> C10dGroup::all_gather(const at::Tensor& t) {
  if (t.dim() < 1) throw std::invalid_argument("distributed: allGather needs a tensor with at least one dimension");
  at::Tensor meta = gather_meta(t, "allGather");
  int64_t max_rows = 0;
  for (int i = 0; i < opts_.world_size; ++i) {
    // Same dtype, rank and trailing dims; rows (dim 0) may differ.
    bool same = meta[i][0].item<int64_t>() == meta[opts_.rank][0].item<int64_t>() && meta[i][1].item<int64_t>() == t.dim();
    for (int64_t d = 1; same && d < t.dim(); ++d) same = meta[i][2 + d].item<int64_t>() == t.size(d);
    if (!same)
      throw std::invalid_argument("distributed: allGather: rank " + std::to_string(i) + " passed a tensor of another dtype or trailing shape than rank " +
                                  std::to_string(opts_.rank) + " (only dim 0 may differ)");
    max_rows = std::max(max_rows, meta[i][2].item<int64_t>());
  }
  at::Tensor x = t.contiguous();
  if (x.size(0) < max_rows) {
    std::vector<int64_t> pad_shape = x.sizes().vec();
    pad_shape[0] = max_rows - x.size(0);
    x = at::cat({x, at::zeros(pad_shape, x.options())});
  } else {
    x = x.clone();
  }
  std::vector<at::Tensor> in{x};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int i = 0; i < opts_.world_size; ++i) out[0].push_back(at::empty_like(x));
  c10d::AllgatherOptions o;
  o.timeout = opts_.timeout;
  wait_work(pg()->allgather(out, in, o), "allGather");
  std::vector<at::Tensor> r;
  for (int i = 0; i < opts_.world_size; ++i) r.push_back(out[0][i].narrow(0, 0, meta[i][2].item<int64_t>()));
  return r;
}

void C10dGroup::barrier() {
  c10d::BarrierOptions o;
  o.timeout = opts_.timeout;
  wait_work(pg()->barrier(o), "barrier");
}

class WorkWaiter : public Group::Pending {
 public:
  WorkWaiter(std::shared_ptr<C10dGroup> g, c10::intrusive_ptr<c10d::Work> w) : g_(std::move(g)), w_(std::move(w)) {}
  void wait() override { g_->wait_work(w_, "gradient all-reduce"); }

 private:
  std::shared_ptr<C10dGroup> g_;
  c10::intrusive_ptr<c10d::Work> w_;
};

std::unique_ptr<Group::Pending> C10dGroup::all_reduce_async(at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::SUM;
  o.timeout = opts_.timeout;
  try {
    return std::make_unique<WorkWaiter>(shared_from_this(), pg()->allreduce(v, o));
  } catch (const std::exception& e) {
    fail("gradient all-reduce", error_text(e));
  }
}

void C10dGroup::broadcast_inplace(std::vector<at::Tensor>& ts, int src) {
  at::NoGradGuard no_grad;
  // Coalesce same-dtype/device tensors into one flat buffer per group: one collective each.
  std::vector<bool> done(ts.size(), false);
  for (size_t i = 0; i < ts.size(); ++i) {
    if (done[i] || !ts[i].defined()) continue;
    std::vector<size_t> idx;
    for (size_t j = i; j < ts.size(); ++j)
      if (!done[j] && ts[j].defined() && ts[j].scalar_type() == ts[i].scalar_type() && ts[j].device() == ts[i].device()) idx.push_back(j), done[j] = true;
    std::vector<at::Tensor> flat_parts;
    for (size_t j : idx) flat_parts.push_back(ts[j].detach().reshape({-1}));
    std::vector<at::Tensor> v{at::cat(flat_parts)};
    // Different models on different ranks would otherwise corrupt memory or hang.
    at::Tensor meta = gather_meta(v[0], "broadcast of parameters and buffers");
    for (int r = 0; r < opts_.world_size; ++r)
      if (!meta[r].equal(meta[src]))
        throw std::invalid_argument("distributed: broadcast of parameters and buffers: rank " + std::to_string(r) + " has " +
                                    std::to_string(meta[r][2].item<int64_t>()) + " elements of this dtype, rank " + std::to_string(src) +
                                    " has " + std::to_string(meta[src][2].item<int64_t>()) + " (same model on every rank?)");
    c10d::BroadcastOptions o;
    o.rootRank = src;
    o.timeout = opts_.timeout;
    wait_work(pg()->broadcast(v, o), "broadcast of parameters and buffers");
    int64_t off = 0;
    for (size_t j : idx) {
      const int64_t n = ts[j].numel();
      if (opts_.rank != src) ts[j].detach().copy_(v[0].narrow(0, off, n).view(ts[j].sizes()));
      off += n;
    }
  }
}

void C10dGroup::shutdown() {
  bool was = stopped_.exchange(true);
  if (was) return;
  hb_cv_.notify_all();
  if (hb_thread_.joinable()) hb_thread_.join();
  try {
    if (hb_store_) hb_store_->set("mood/bye/" + std::to_string(opts_.rank), std::vector<uint8_t>{1});
  } catch (const std::exception&) {
  }
  pg_.reset();
}

// ---- gradient sync -------------------------------------------------------------------------

struct Bucket {
  std::vector<size_t> params;  // indices into DdpSync::params_
  std::vector<int64_t> offsets;
  int64_t numel = 0;
  at::Tensor flat;
  size_t ready = 0;
  std::unique_ptr<Group::Pending> work;
};

class DdpSync : public GradientSync, public std::enable_shared_from_this<DdpSync> {
 public:
  DdpSync(std::shared_ptr<Group> g, GradSyncOptions o) : group_(std::move(g)), opts_(o) {}
  ~DdpSync() override {
    for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
  }

  void attach(const std::vector<at::Tensor>& params) override;
  void begin_backward(bool sync) override;
  void finish_backward() override;
  void broadcast_from_rank0(const std::vector<at::Tensor>& tensors) override {
    std::vector<at::Tensor> v(tensors);
    group_->broadcast_inplace(v, 0);
  }
  GradSyncStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void on_grad_ready(size_t i);

 private:
  void launch_ready_buckets(bool from_hook);
  void launch(Bucket& b);

  std::shared_ptr<Group> group_;
  GradSyncOptions opts_;
  std::vector<at::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
  std::vector<bool> seen_;
  size_t next_launch_ = 0;
  bool syncing_ = false;
  mutable std::mutex mu_;
  GradSyncStats stats_;
  GradSyncStats current_;
};

// Runs after a parameter's grad accumulator has written .grad (so accumulated micro-steps count).
class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<DdpSync> s, size_t i) : s_(std::move(s)), i_(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto s = s_.lock()) s->on_grad_ready(i_);
    return outputs;
  }

 private:
  std::weak_ptr<DdpSync> s_;
  size_t i_;
};

void DdpSync::attach(const std::vector<at::Tensor>& params) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!params_.empty()) throw std::logic_error("GradientSync.attach called twice");
  for (auto& p : params)
    if (!p.requires_grad() || !p.is_leaf()) throw std::invalid_argument("GradientSync.attach: every parameter must be a leaf that requires grad");
  params_ = params;
  bucket_of_.assign(params.size(), 0);
  seen_.assign(params.size(), false);
  // Reverse order: backward produces the last layers' gradients first, so those buckets fill and
  // launch first (DDP's heuristic). A bucket holds one dtype/device and at most bucket_bytes.
  for (size_t k = params.size(); k-- > 0;) {
    const at::Tensor& p = params[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    bool fresh = buckets_.empty();
    if (!fresh) {
      Bucket& b = buckets_.back();
      const at::Tensor& first = params_[b.params.front()];
      fresh = first.scalar_type() != p.scalar_type() || first.device() != p.device() ||
              (b.numel > 0 && (b.numel * static_cast<int64_t>(first.element_size()) + bytes) > opts_.bucket_bytes);
    }
    if (fresh) buckets_.emplace_back();
    Bucket& b = buckets_.back();
    b.params.push_back(k);
    b.offsets.push_back(b.numel);
    b.numel += p.numel();
    bucket_of_[k] = buckets_.size() - 1;
  }
  for (auto& b : buckets_) b.flat = at::empty({b.numel}, params_[b.params.front()].options().requires_grad(false));
  auto self = weak_from_this();
  for (size_t k = 0; k < params.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params[k]);
    uintptr_t key = acc->add_post_hook(std::make_unique<ReadyHook>(self, k));
    hooks_.emplace_back(acc, key);  // keeping the accumulator alive keeps the hook attached
  }
}

void DdpSync::begin_backward(bool sync) {
  std::lock_guard<std::mutex> lock(mu_);
  if (params_.empty()) throw std::logic_error("GradientSync.begin_backward before attach");
  syncing_ = sync && group_->world_size() > 1;
  std::fill(seen_.begin(), seen_.end(), false);
  // A backward that threw may have left all-reduces in flight on the bucket buffers: let them end
  // before the buffers are reused (their errors were already reported by that step).
  for (auto& b : buckets_) {
    if (b.work) {
      try {
        b.work->wait();
      } catch (const std::exception&) {
      }
    }
    b.ready = 0;
    b.work.reset();
  }
  next_launch_ = 0;
  current_ = GradSyncStats{};
  current_.buckets = static_cast<int64_t>(buckets_.size());
}

void DdpSync::on_grad_ready(size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!syncing_ || seen_[i]) return;  // non-final micro-step: no communication
  seen_[i] = true;
  Bucket& b = buckets_[bucket_of_[i]];
  ++b.ready;
  if (opts_.overlap) launch_ready_buckets(true);
}

void DdpSync::launch(Bucket& b) {
  at::NoGradGuard no_grad;
  for (size_t j = 0; j < b.params.size(); ++j) {
    const at::Tensor& p = params_[b.params[j]];
    at::Tensor slice = b.flat.narrow(0, b.offsets[j], p.numel());
    const at::Tensor& g = p.grad();
    if (g.defined()) slice.copy_(g.reshape({-1}));
    else slice.zero_();  // unused in this backward: contributes zeros, like find_unused_parameters
  }
  b.work = group_->all_reduce_async(b.flat);
}

// Buckets launch strictly in index order so every rank issues the same collective sequence.
void DdpSync::launch_ready_buckets(bool from_hook) {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size()) {
    launch(buckets_[next_launch_]);
    if (from_hook) ++current_.launched_during_backward;
    ++next_launch_;
  }
}

void DdpSync::finish_backward() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!syncing_) return;
  syncing_ = false;
  const auto t0 = Clock::now();
  launch_ready_buckets(false);
  for (; next_launch_ < buckets_.size(); ++next_launch_) launch(buckets_[next_launch_]);
  at::NoGradGuard no_grad;
  const double inv = 1.0 / group_->world_size();
  for (auto& b : buckets_) {
    b.work->wait();
    b.work.reset();
    b.flat.mul_(inv);
    for (size_t j = 0; j < b.params.size(); ++j) {
      at::Tensor p = params_[b.params[j]];
      at::Tensor avg = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(avg);
      else p.mutable_grad() = avg.clone();
    }
  }
  current_.wait_ms = ms_since(t0);
  current_.syncs = stats_.syncs + 1;
  stats_ = current_;
}

}  // namespace

std::shared_ptr<Group> Group::create(const GroupOptions& opts) {
  auto g = std::make_shared<C10dGroup>(opts);
  g->init();
  return g;
}

std::shared_ptr<GradientSync> make_gradient_sync(std::shared_ptr<Group> group, const GradSyncOptions& opts) {
  if (!group) throw std::invalid_argument("make_gradient_sync: no process group");
  if (opts.bucket_bytes < 1) throw std::invalid_argument("make_gradient_sync: bucket_bytes must be positive");
  return std::make_shared<DdpSync>(std::move(group), opts);
}

GradSyncStats gradient_sync_stats(const GradientSync& s) {
  auto* d = dynamic_cast<const DdpSync*>(&s);
  return d ? d->stats() : GradSyncStats{};
}

#endif  // MOOD_HAVE_C10D

}  // namespace dist
}  // namespace mood
