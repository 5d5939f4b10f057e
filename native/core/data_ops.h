// Data-pipeline ops: per-sample transforms driven by plans drawn in TypeScript (so results never depend
// on thread count), batch assembly of in-memory uint8 datasets, torch-compatible permutations.
#pragma once
#include "core/image_ops.h"
#include "core/ops.h"

namespace mood {
void register_data_ops(const OpRegistry& add);

namespace data {

enum class Geometry {
  kEvalSmall,   // input <= 32: identity, or a bicubic resize to S x S when the image is not S x S
  kEvalResize,  // shorter side -> resize_short (bicubic), center crop S
  kTrainCrop,   // (resize to S x S if needed), zero-pad `pad`, crop S x S at the plan's offset
  kTrainRrc,    // timm RandomResizedCrop: box from the plan's uniforms, bicubic resize to S x S
};

// Column layout of one plan row (float64). lib/data/plan-layout.ts mirrors it.
enum PlanCol : int {
  kCropY = 0,
  kCropX = 1,
  kFlip = 2,
  kRrcScaleMin = 3,
  kRrcScaleMax = 4,
  kRrcRatioMin = 5,
  kRrcRatioMax = 6,
  kRrcUniforms = 7,              // 10 attempts x (area, log-ratio, top, left)
  kOpCount = kRrcUniforms + 40,  // pixel ops to apply after the flip, then (op, arg, resample) triples
  kOps = kOpCount + 1,
  kOpStride = 3,
  kMaxOps = 8,
  kEraseCount = kOps + kOpStride * kMaxOps,  // random erasing boxes, then (top, left, h, w, seed) each
  kErase = kEraseCount + 1,
  kEraseStride = 5,
  kMaxErase = 8,
  kPlanCols = kErase + kEraseStride * kMaxErase,
};

// Pixel ops on uint8 RGB with PIL's arithmetic: timm 0.3 RandAugment's ops (_RAND_TRANSFORMS order),
// which also serve torchvision's ColorJitter (Brightness, Contrast, Color = saturation).
enum PixelOp : int {
  kAutoContrast = 0, kEqualize, kInvert, kRotate, kPosterize, kSolarize, kSolarizeAdd, kColor, kContrast,
  kBrightness, kSharpness, kShearX, kShearY, kTranslateXRel, kTranslateYRel, kNumPixelOps
};

// PIL's filter ids for the geometric ops.
enum Resample : int { kBilinear = 2, kBicubic = 3 };

// Applies one op with its argument (degrees, bits, threshold, addend, factor, shear, fraction);
// geometric ops use PIL's affine transform with the `resample` filter and `fill` outside the image.
void pixel_op(img::Planar& im, int op, double arg, const uint8_t fill[3], int resample = kBicubic);

// timm RandomErasing fill of a box (after normalisation).
enum class EraseMode { kConst, kRand, kPixel };

struct TransformConfig {
  Geometry geometry = Geometry::kEvalSmall;
  int size = 32;
  int resize_short = 0;
  int pad = 4;
  float mean[3] = {0.5f, 0.5f, 0.5f};
  float std[3] = {0.5f, 0.5f, 0.5f};
  uint8_t fill[3] = {128, 128, 128};  // RandAugment fill colour (timm: round(255 * mean))
  EraseMode erase_mode = EraseMode::kPixel;
};

// The transform attributes shared by data_batch and image_batch (geometry, size, resize_short, pad,
// mean0-2, std0-2, fill0-2, erase_mode); `op` names the op in error messages.
TransformConfig read_transform_config(const OpArgs& a, const std::string& op, const char* default_geometry);

// src (1 or 3 planes; 1 is replicated like PIL convert('RGB')) -> out float32 [3, S, S], normalised.
// `plan` is one row of kPlanCols values (nullptr: evaluation).
void transform_sample(const img::Planar& src, const TransformConfig& cfg, const double* plan, float* out);

// transform_sample of an encoded file, decoding only the pixels the geometry reads (eval_resize's
// center crop, train_rrc's box) when the file allows it (see img::decode_jpeg_region): same output
// bytes as decode_image + transform_sample. Returns false, having written nothing, when the caller
// must take that full path (other geometries, formats, or files).
// `min_short` > 0 selects the opt-in reduced-DCT decode (img::decode_image's fast path).
bool transform_encoded(const uint8_t* data, size_t size, const TransformConfig& cfg, const double* plan, float* out, int min_short = 0);

// The RandomResizedCrop box (top, left, h, w) that timm 0.3's get_params picks with these uniforms.
void rrc_box(int img_h, int img_w, const double* plan, int box[4]);

// ---- BEiT pre-training: two views of one crop (DataAugmentationForBEiT) ----------------------

// A BEiT plan row is a standard plan row (the flip and RandomResizedCrop columns above) followed by
// these columns. lib/data/beit-views.ts mirrors them.
enum BeitPlanCol : int {
  kBeitJitter = kPlanCols,       // brightness, contrast, saturation factors (< 0: that jitter is off)
  kBeitOrder = kBeitJitter + 3,  // the order of torchvision ColorJitter's 4 ops (randperm(4); 3 = hue, off)
  kBeitInterp = kBeitOrder + 4,  // --train_interpolation random: 0 bilinear, 1 bicubic
  kBeitPlanCols = kBeitInterp + 1,
};

struct BeitViewsConfig {
  int size = 224;          // --input_size: the patch view
  int second_size = 112;   // --second_input_size: the tokenizer view
  img::Filter filter = img::Filter::kBicubic;         // --train_interpolation
  bool random_filter = false;                          // 'random': bilinear or bicubic per sample (plan)
  img::Filter second_filter = img::Filter::kLanczos;  // --second_interpolation
  float mean[3] = {0.5f, 0.5f, 0.5f};                 // patch view Normalize
  float std[3] = {0.5f, 0.5f, 0.5f};
};
// Attributes size, second_size, interpolation, second_interpolation, mean0..2, std0..2.
BeitViewsConfig read_beit_config(const OpArgs& a);

// The reference's DataAugmentationForBEiT on one image, in its order and with PIL semantics: ColorJitter
// (ImageEnhance Brightness / Contrast / Color in the plan's order) and RandomHorizontalFlip on the whole
// image, then ONE RandomResizedCrop box resized twice: the patch view (cfg.size, cfg.filter) ->
// ToTensor + Normalize into `patches` [3, size, size], and the tokenizer view (second_size,
// second_filter) -> ToTensor + map_pixels into `tokens` [3, second_size, second_size]. src has 1
// plane (grey, replicated like convert('RGB')) or 3; `plan` is one row of kBeitPlanCols values.
void beit_views(const img::Planar& src, const BeitViewsConfig& cfg, const double* plan, float* patches, float* tokens);

}  // namespace data
}  // namespace mood
