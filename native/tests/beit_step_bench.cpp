// BEiT train-step throughput without Node, for GPU machines (scripts/gpu-check.sh): images/s of
// forward + cross-entropy + backward, and the model-FLOPs utilisation against a given peak.
// Not a test (no pass/fail); prints one JSON object. Its PyTorch twin: scripts/bench/beit-forward.py
// with the same --model/--device/--amp/--batch flags.
//   mood_beit_bench --model beit_large_patch16_224 --device cuda --batch 64 --amp bf16 [--iters 20]
//                   [--attention auto|exact|fused] [--peak-tflops 989]
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>

#include "core/beit.h"
#include "core/runtime.h"

namespace {

// Matmul FLOPs of one forward per image (2 per multiply-add): patch embedding, per block the
// qkv/proj/MLP projections and the two attention products, and the head.
double forward_flops(const mood::beit::BeitOptions& o) {
  const double n = static_cast<double>(o.num_patches() + 1), d = static_cast<double>(o.embed_dim);
  const double hidden = static_cast<double>(o.mlp_hidden()), p2 = static_cast<double>(o.patch_size * o.patch_size);
  const double embed = 2.0 * (n - 1) * d * o.in_chans * p2;
  const double block = 2.0 * n * d * (3 * d) + 2.0 * n * d * d + 2.0 * 2.0 * n * d * hidden + 2.0 * 2.0 * n * n * d;
  return embed + o.depth * block + 2.0 * d * static_cast<double>(o.num_classes);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"model", "beit_base_patch16_224"}, {"device", "cpu"}, {"batch", "4"},
                                       {"amp", "none"}, {"iters", "5"}, {"attention", "auto"}, {"peak-tflops", "989"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  try {
    mood::beit::BeitOptions o = mood::beit::config(a["model"]);
    o.device = mood::parse_device(a["device"]);
    // MOOD's fine-tuning layout, as scripts/bench/beit-forward.{ts,py} build it.
    o.use_abs_pos_emb = false;
    o.use_rel_pos_bias = true;
    o.init_values = 0.1;
    o.seed = 0;
    o.drop_path_rate = 0.1;
    o.attention = a["attention"] == "exact"   ? mood::beit::AttentionMode::kExact
                  : a["attention"] == "fused" ? mood::beit::AttentionMode::kFused
                                              : mood::beit::AttentionMode::kAuto;
    if (a["amp"] == "bf16") o.autocast = at::kBFloat16;
    else if (a["amp"] == "fp16") o.autocast = at::kHalf;
    else if (a["amp"] != "none") throw std::invalid_argument("--amp must be none, bf16 or fp16");
    const int64_t batch = std::atoll(a["batch"].c_str());
    const int iters = std::atoi(a["iters"].c_str());
    auto model = std::make_shared<mood::beit::BeitImpl>(o);
    model->train();
    at::Tensor x = at::randn({batch, o.in_chans, o.img_size, o.img_size}, at::TensorOptions().device(o.device));
    at::Tensor y = at::arange(batch, at::TensorOptions().dtype(at::kLong).device(o.device)) % o.num_classes;
    auto step = [&] {
      for (auto& p : model->parameters()) p.mutable_grad() = at::Tensor();
      at::cross_entropy_loss(model->forward(x).to(at::kFloat), y).backward();
      // Waits for the device: the patch embedding's gradient is the last one backward computes.
      return model->patch_embed->proj->weight.grad().sum().item<double>();
    };
    step();  // warm-up (allocator, kernels)
    step();
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) step();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double ips = iters * batch / s;
    const double train_flops = 3.0 * forward_flops(o);  // backward ~ 2x forward
    const double tflops = ips * train_flops / 1e12;
    std::printf(
        "{\"impl\": \"mood-native\", \"model\": \"%s\", \"device\": \"%s\", \"amp\": \"%s\", \"attention\": \"%s\", "
        "\"batch\": %lld, \"iters\": %d, \"seconds\": %.4f, \"images_per_s\": %.3f, \"train_gflops_per_image\": %.2f, "
        "\"achieved_tflops\": %.2f, \"mfu\": %.4f, \"peak_tflops\": %s}\n",
        a["model"].c_str(), a["device"].c_str(), a["amp"].c_str(), a["attention"].c_str(), static_cast<long long>(batch),
        iters, s, ips, train_flops / 1e9, tflops, tflops / std::atof(a["peak-tflops"].c_str()), a["peak-tflops"].c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mood_beit_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
