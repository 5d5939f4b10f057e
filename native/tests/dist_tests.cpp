// Two-process tests of native/core/dist over Gloo on loopback. The parent only forks (no torch
// use before fork(), so no OpenMP pool is inherited); each child joins the group, runs one
// scenario and reports through its exit status; the parent bounds every scenario in time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include <ATen/Parallel.h>

#include "core/dist.h"
#include "test_harness.h"

namespace {

namespace dist = mood::dist;
using Child = std::function<int(int rank)>;  // returns the exit status (0 = pass)

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Runs fn(rank) in `n` forked children; returns their exit statuses (-signal when killed, 124
// when the parent had to kill them at the deadline).
std::vector<int> run_ranks(int n, const Child& fn, double deadline_s = 60) {
  std::fflush(stdout);  // or the children print the parent's buffered output again
  std::vector<pid_t> pids;
  for (int r = 0; r < n; ++r) {
    pid_t p = fork();
    if (p == 0) {
      int rc = 1;
      try {
        at::set_num_threads(1);
        rc = fn(r);
      } catch (const std::exception& e) {
        std::printf("  rank %d: uncaught: %s\n", r, e.what());
        rc = 3;
      }
      std::fflush(stdout);
      _exit(rc);
    }
    pids.push_back(p);
  }
  std::vector<int> status(n, 124);
  std::vector<bool> done(n, false);
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(deadline_s);
  int left = n;
  while (left > 0 && std::chrono::steady_clock::now() < end) {
    for (int r = 0; r < n; ++r) {
      if (done[r]) continue;
      int st = 0;
      if (waitpid(pids[r], &st, WNOHANG) == pids[r]) {
        done[r] = true;
        --left;
        status[r] = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int r = 0; r < n; ++r) {
    if (done[r]) continue;
    kill(pids[r], SIGKILL);
    waitpid(pids[r], nullptr, 0);
  }
  return status;
}

dist::GroupOptions opts(int rank, int world, int port, int timeout_ms = 30000) {
  dist::GroupOptions o;
  o.rank = rank;
  o.world_size = world;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.timeout = std::chrono::milliseconds(timeout_ms);
  return o;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

#define EXPECT(cond)                                                         \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::printf("  rank %d: %s:%d: failed: %s\n", rank, __FILE__, __LINE__, #cond); \
      return 1;                                                              \
    }                                                                        \
  } while (0)

// A two-layer MLP with MSE loss on rows [lo, hi) of a fixed batch, as the "model".
struct Mlp {
  at::Tensor w1, b1, w2, b2;
  explicit Mlp(int seed) {
    at::manual_seed(seed);
    w1 = at::randn({16, 5}, at::kDouble).requires_grad_();
    b1 = at::randn({16}, at::kDouble).requires_grad_();
    w2 = at::randn({3, 16}, at::kDouble).requires_grad_();
    b2 = at::randn({3}, at::kDouble).requires_grad_();
  }
  std::vector<at::Tensor> params() const { return {w1, b1, w2, b2}; }
  void backward(const at::Tensor& x, const at::Tensor& y, double scale) {
    at::Tensor h = at::relu(at::matmul(x, w1.t()) + b1);
    at::Tensor out = at::matmul(h, w2.t()) + b2;
    (at::mse_loss(out, y) * scale).backward();
  }
};

std::pair<at::Tensor, at::Tensor> batch() {
  at::manual_seed(7);
  return {at::randn({8, 5}, at::kDouble), at::randn({8, 3}, at::kDouble)};
}

}  // namespace

MOOD_TEST(dist_collectives_two_ranks) {
  const int port = free_port();
  auto st = run_ranks(2, [port](int rank) {
    auto g = dist::Group::create(opts(rank, 2, port));
    EXPECT(g->rank() == rank && g->world_size() == 2);
    at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3}) + 10 * rank;  // rank 1 = rank 0 + 10
    EXPECT(g->all_reduce(x, dist::ReduceOp::Sum).equal(at::arange(6, at::kFloat).reshape({2, 3}) * 2 + 10));
    EXPECT(g->all_reduce(x, dist::ReduceOp::Avg).equal(at::arange(6, at::kFloat).reshape({2, 3}) + 5));
    EXPECT(g->all_reduce(x, dist::ReduceOp::Max).equal(at::arange(6, at::kFloat).reshape({2, 3}) + 10));
    EXPECT(x.equal(at::arange(6, at::kFloat).reshape({2, 3}) + 10 * rank));  // input untouched
    EXPECT(g->broadcast(x, 1).equal(at::arange(6, at::kFloat).reshape({2, 3}) + 10));
    // Unequal rows: rank 0 has 3 rows, rank 1 has 2.
    at::Tensor rows = at::full({3 - rank, 2}, rank, at::kLong);
    auto parts = g->all_gather(rows);
    EXPECT(parts.size() == 2 && parts[0].size(0) == 3 && parts[1].size(0) == 2);
    EXPECT(parts[0].eq(0).all().item<bool>() && parts[1].eq(1).all().item<bool>());
    // Dataset order: 5 rows, rank r holds r, r+2, r+4 (rank 1 padded with row 0, like DistributedSampler).
    at::Tensor mine = rank == 0 ? at::tensor({0., 2., 4.}) : at::tensor({1., 3., 0.});
    EXPECT(dist::all_gather_interleaved(*g, mine.unsqueeze(1), 5).squeeze(1).equal(at::arange(5, at::kDouble)));
    // Shape mismatch is an error on every rank, not a hang or garbage.
    bool threw = false;
    try {
      g->all_reduce(at::zeros({2 + rank}), dist::ReduceOp::Sum);
    } catch (const std::invalid_argument& e) {
      threw = contains(e.what(), "another dtype/shape");
    }
    EXPECT(threw);
    g->barrier();
    g->shutdown();
    return 0;
  });
  CHECK(st[0] == 0);
  CHECK(st[1] == 0);
}

// Grads averaged over 2 ranks of half batches == full-batch grads in one process; with several
// small buckets launched from the autograd hooks; then 2-micro-step accumulation.
MOOD_TEST(dist_gradient_sync_matches_full_batch) {
  const int port = free_port();
  auto st = run_ranks(2, [port](int rank) {
    auto g = dist::Group::create(opts(rank, 2, port));
    auto [x, y] = batch();
    Mlp ref(1);
    ref.backward(x, y, 1.0);

    Mlp m(100 + rank);  // different init: broadcast_from_rank0 must make them equal
    dist::GradSyncOptions so;
    so.bucket_bytes = 500;  // buckets: b2+w2 (408 B), w1 (640 B), b1 (128 B)
    auto sync = dist::make_gradient_sync(g, so);
    sync->attach(m.params());
    sync->broadcast_from_rank0(m.params());
    Mlp m0(100);
    for (size_t i = 0; i < 4; ++i) EXPECT(m.params()[i].equal(m0.params()[i]));
    // Same weights as ref from now on.
    {
      at::NoGradGuard ng;
      for (size_t i = 0; i < 4; ++i) m.params()[i].copy_(ref.params()[i]);
    }
    sync->begin_backward(true);
    m.backward(x.narrow(0, 4 * rank, 4), y.narrow(0, 4 * rank, 4), 1.0);
    sync->finish_backward();
    // float64: 2 ranks' halves averaged vs one sum over 8 rows, O(1) gradients: ~8 2^-53 (1e-15) apart;
    // a missing rank's half is off by O(1).
    for (size_t i = 0; i < 4; ++i) EXPECT(at::allclose(m.params()[i].grad(), ref.params()[i].grad(), 1e-12, 1e-12));
    dist::GradSyncStats s = dist::gradient_sync_stats(*sync);
    EXPECT(s.buckets == 3);
    EXPECT(s.launched_during_backward >= 1);  // at least the first bucket went out during backward
    EXPECT(s.syncs == 1);

    // --update_freq 2: micro-steps of 2 rows each per rank, loss scaled by 1/2, sync on the last.
    for (auto& p : m.params()) p.mutable_grad().zero_();
    for (int micro = 0; micro < 2; ++micro) {
      sync->begin_backward(micro == 1);
      m.backward(x.narrow(0, 4 * rank + 2 * micro, 2), y.narrow(0, 4 * rank + 2 * micro, 2), 0.5);
      sync->finish_backward();
      if (micro == 0) EXPECT(dist::gradient_sync_stats(*sync).syncs == 1);  // no communication
    }
    EXPECT(dist::gradient_sync_stats(*sync).syncs == 2);
    for (size_t i = 0; i < 4; ++i) EXPECT(at::allclose(m.params()[i].grad(), ref.params()[i].grad(), 1e-12, 1e-12));
    g->shutdown();
    return 0;
  });
  CHECK(st[0] == 0);
  CHECK(st[1] == 0);
}

MOOD_TEST(dist_world_size_mismatch_is_named) {
  const int port = free_port();
  auto st = run_ranks(2, [port](int rank) {
    try {
      dist::Group::create(opts(rank, rank == 0 ? 2 : 3, port, 20000));
    } catch (const std::exception& e) {
      EXPECT(contains(e.what(), "world size mismatch"));
      return 0;
    }
    return 2;
  }, 30);
  CHECK(st[0] == 0);
  CHECK(st[1] == 0);
}

MOOD_TEST(dist_missing_rank_and_unreachable_master_time_out) {
  const int port = free_port();
  auto st = run_ranks(1, [port](int rank) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      dist::Group::create(opts(0, 2, port, 1500));  // rank 1 never comes
      return 2;
    } catch (const std::exception& e) {
      EXPECT(contains(e.what(), "rank(s) 1 did not join"));
    }
    EXPECT(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
    try {
      dist::Group::create(opts(1, 2, free_port(), 1500));  // nobody hosts the store there
      return 2;
    } catch (const std::exception& e) {
      EXPECT(contains(e.what(), "cannot reach the master"));
    }
    return 0;
  }, 30);
  CHECK(st[0] == 0);
}

MOOD_TEST(dist_port_in_use_is_named) {
  const int port = free_port();
  auto st = run_ranks(1, [port](int rank) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(port);
    EXPECT(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 && listen(fd, 4) == 0);
    try {
      dist::Group::create(opts(0, 2, port, 1500));
      return 2;
    } catch (const std::exception& e) {
      if (!contains(e.what(), "already in use")) std::printf("  got: %s\n", e.what());
      EXPECT(contains(e.what(), "already in use"));
    }
    close(fd);
    return 0;
  }, 30);
  CHECK(st[0] == 0);
}

// Rank 1 dies (SIGKILL) while rank 0 is in an all-reduce: rank 0 fails within a bounded time
// with a message naming rank 1.
MOOD_TEST(dist_lost_rank_is_named) {
  const int port = free_port();
  auto st = run_ranks(2, [port](int rank) {
    auto g = dist::Group::create(opts(rank, 2, port, 20000));
    g->barrier();
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      raise(SIGKILL);
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      g->all_reduce(at::ones({1000}), dist::ReduceOp::Sum);
      return 2;
    } catch (const std::exception& e) {
      if (!contains(e.what(), "lost rank 1")) std::printf("  got: %s\n", e.what());
      EXPECT(contains(e.what(), "lost rank 1"));
    }
    EXPECT(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(15));
    return 0;
  }, 40);
  CHECK(st[0] == 0);
  CHECK(st[1] == -SIGKILL);
}

// Rank 0 hosts the rendezvous store: when it dies, rank 1 says so (its heartbeats fail).
MOOD_TEST(dist_lost_rank0_is_named) {
  const int port = free_port();
  auto st = run_ranks(2, [port](int rank) {
    auto g = dist::Group::create(opts(rank, 2, port, 20000));
    g->barrier();
    if (rank == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      raise(SIGKILL);
    }
    try {
      g->all_reduce(at::ones({1000}), dist::ReduceOp::Sum);
      return 2;
    } catch (const std::exception& e) {
      if (!contains(e.what(), "lost rank 0 (it hosts the rendezvous store)")) std::printf("  got: %s\n", e.what());
      EXPECT(contains(e.what(), "lost rank 0 (it hosts the rendezvous store)"));
    }
    return 0;
  }, 40);
  CHECK(st[0] == -SIGKILL);
  CHECK(st[1] == 0);
}

int main(int argc, char** argv) {
  if (!mood::dist::gloo_available()) {
    for (auto& c : mood_test::registry()) std::printf("[skip] %s: built without c10d/Gloo headers (libgloo-dev)\n", c.name);
    std::printf("0 passed, 0 failed, %zu skipped\n", mood_test::registry().size());
    return 0;
  }
  return mood_test::run_all(argc, argv);
}

// NCCL on CUDA (scripts/gpu-check.sh runs it on a GPU machine): the collectives and the bucketed
// gradient sync with cuda:rank tensors, then the all-reduce bus bandwidth as a figure. Ranks:
// MOOD_TEST_NCCL_RANKS (default 1; NCCL needs one GPU per rank). Skipped, saying why, on builds
// without NCCL (every CPU libtorch, e.g. Debian's).
MOOD_TEST(dist_nccl_on_cuda) {
  if (!dist::nccl_available()) MOOD_SKIP("this libtorch has no NCCL backend (CPU build)");
  const char* env = std::getenv("MOOD_TEST_NCCL_RANKS");
  const int world = env ? std::atoi(env) : 1;
  const int port = free_port();
  auto st = run_ranks(world, [port, world](int rank) {
    // CUDA is first touched here, in the child (a CUDA context does not survive fork()).
    if (!at::hasCUDA()) {
      std::printf("  rank %d: skipped: no CUDA device\n", rank);
      return 0;
    }
    const at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(rank));
    auto o = opts(rank, world, port, 120000);
    o.backend = "nccl";
    auto g = dist::Group::create(o);
    const double w = world;
    at::Tensor base = at::arange(6, at::TensorOptions().dtype(at::kFloat).device(dev)).reshape({2, 3});
    at::Tensor x = base + 10 * rank;
    // sum over ranks of (base + 10 r) = w*base + 10*w(w-1)/2
    EXPECT(g->all_reduce(x, dist::ReduceOp::Sum).cpu().equal((base * w + 10 * w * (w - 1) / 2).cpu()));
    EXPECT(at::allclose(g->all_reduce(x, dist::ReduceOp::Avg).cpu(), (base + 10 * (w - 1) / 2).cpu()));
    EXPECT(g->all_reduce(x, dist::ReduceOp::Max).cpu().equal((base + 10 * (w - 1)).cpu()));
    EXPECT(g->broadcast(x, 0).cpu().equal(base.cpu()));
    auto parts = g->all_gather(x);
    EXPECT(static_cast<int>(parts.size()) == world);
    for (int r = 0; r < world; ++r) EXPECT(parts[r].cpu().equal((base + 10 * r).cpu()));

    // Bucketed gradient sync on CUDA parameters: equals the full-batch gradient of one process.
    auto [xc, yc] = batch();
    Mlp ref(1);
    ref.backward(xc, yc, 1.0);
    Mlp m(1);
    std::vector<at::Tensor> ps;
    for (auto& p : m.params()) ps.push_back(p.detach().to(dev).requires_grad_());
    dist::GradSyncOptions so;
    so.bucket_bytes = 500;
    auto sync = dist::make_gradient_sync(g, so);
    sync->attach(ps);
    sync->begin_backward(true);
    const int64_t rows = 8 / world;
    {
      at::Tensor xs = xc.narrow(0, rows * rank, rows).to(dev), ys = yc.narrow(0, rows * rank, rows).to(dev);
      at::Tensor h = at::relu(at::matmul(xs, ps[0].t()) + ps[1]);
      at::mse_loss(at::matmul(h, ps[2].t()) + ps[3], ys).backward();
    }
    sync->finish_backward();
    for (size_t i = 0; i < 4; ++i) EXPECT(at::allclose(ps[i].grad().cpu(), ref.params()[i].grad(), 1e-10, 1e-10));

    // Figure: all-reduce bus bandwidth (NCCL's convention: 2(n-1)/n x bytes / time).
    for (int64_t mb : {16, 256}) {
      at::Tensor big = at::ones({mb * 1024 * 1024 / 4}, at::TensorOptions().dtype(at::kFloat).device(dev));
      g->all_reduce(big, dist::ReduceOp::Sum)[0].item<float>();  // warm-up; item() waits for the stream
      const int iters = 5;
      auto t0 = std::chrono::steady_clock::now();
      at::Tensor r;
      for (int i = 0; i < iters; ++i) r = g->all_reduce(big, dist::ReduceOp::Sum);
      EXPECT(r[0].item<float>() == static_cast<float>(world));
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters;
      double bus = world > 1 ? 2.0 * (world - 1) / world * static_cast<double>(big.nbytes()) / s / 1e9 : 0.0;
      if (rank == 0) std::printf("  nccl all-reduce %lld MB x %d ranks: %.3f ms, bus %.1f GB/s\n", static_cast<long long>(mb), world, s * 1e3, bus);
    }
    g->shutdown();
    return 0;
  }, 300);
  for (int r = 0; r < world; ++r) CHECK(st[r] == 0);
}
