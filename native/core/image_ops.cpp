#include "core/image_ops.h"

#include "core/data_ops.h"
#include "core/parallel.h"

#include <csetjmp>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <cerrno>
#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#ifdef MOOD_HAVE_LIBJPEG
#include <jpeglib.h>
#endif
#ifdef MOOD_HAVE_LIBPNG
#include <png.h>
#endif

namespace mood {
namespace img {
namespace {

// Pillow's bicubic kernel (Keys, a = -0.5), support 2.
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

// Pillow's other filters (Resample.c), same double arithmetic.
double bilinear(double x) {
  if (x < 0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hamming(double x) {
  if (x < 0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // Pillow's float constants
}
double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}
double lanczos(double x) { return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0; }

struct FilterDef {
  double (*fn)(double);
  double support;
};
FilterDef filter_def(Filter f) {
  switch (f) {
    case Filter::kBilinear: return {bilinear, 1.0};
    case Filter::kHamming: return {hamming, 1.0};
    case Filter::kLanczos: return {lanczos, 3.0};
    case Filter::kBicubic: break;
  }
  return {bicubic, 2.0};
}

constexpr int kPrecisionBits = 32 - 8 - 2;

// Same arithmetic as Pillow's precompute_coeffs + normalize_coeffs_8bpc (box = whole axis), for the
// outputs [keep0, keep0 + keepn). in_size == out_size: Pillow skips the pass; one tap of weight 1.0
// reproduces that copy exactly ((v << 22) + 2^21) >> 22 == v).
ResizeAxis axis_coeffs(int in_size, int out_size, int keep0, int keepn, Filter filter = Filter::kBicubic) {
  if (in_size <= 0 || out_size <= 0) throw std::invalid_argument("resize: sizes must be positive");
  if (keep0 < 0 || keepn <= 0 || keep0 + keepn > out_size) throw std::invalid_argument("resize: output window outside the output");
  ResizeAxis c;
  c.start.resize(keepn);
  c.count.resize(keepn);
  if (in_size == out_size) {
    c.ksize = 1;
    c.k.assign(keepn, 1 << kPrecisionBits);
    for (int i = 0; i < keepn; ++i) c.start[i] = keep0 + i, c.count[i] = 1;
  } else {
    const FilterDef fd = filter_def(filter);
    double scale = static_cast<double>(in_size) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = fd.support * filterscale;
    c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
    c.k.assign(static_cast<size_t>(keepn) * c.ksize, 0);
    std::vector<double> w(c.ksize);
    for (int i = 0; i < keepn; ++i) {
      const int xx = keep0 + i;
      double center = (xx + 0.5) * scale;
      double ss = 1.0 / filterscale;
      int xmin = static_cast<int>(center - support + 0.5);
      if (xmin < 0) xmin = 0;
      int xmax = static_cast<int>(center + support + 0.5);
      if (xmax > in_size) xmax = in_size;
      xmax -= xmin;
      double ww = 0;
      for (int x = 0; x < xmax; ++x) {
        w[x] = fd.fn((x + xmin - center + 0.5) * ss);
        ww += w[x];
      }
      int32_t* k = &c.k[static_cast<size_t>(i) * c.ksize];
      for (int x = 0; x < xmax; ++x) {
        double v = ww != 0.0 ? w[x] / ww : w[x];
        k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits)) : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
      }
      c.start[i] = xmin;
      c.count[i] = xmax;
    }
  }
  c.lo = in_size, c.hi = 0;
  for (int i = 0; i < keepn; ++i) c.lo = std::min(c.lo, c.start[i]), c.hi = std::max(c.hi, c.start[i] + c.count[i]);
  return c;
}

// dst[i] = clip8((2^21 + sum_t src[t * stride + i] * k[t]) >> 22) for i < kW: Pillow's per-pixel sum,
// evaluated for kW neighbouring outputs at once (the accumulators stay in vector registers).
template <int kW>
inline void combine_block(const uint8_t* s, size_t stride, const int32_t* k, int n, uint8_t* dst) {
  int32_t acc[kW];
  for (int i = 0; i < kW; ++i) acc[i] = 1 << (kPrecisionBits - 1);
  for (int t = 0; t < n; ++t, s += stride) {
    const int32_t kt = k[t];
    for (int i = 0; i < kW; ++i) acc[i] += s[i] * kt;
  }
  for (int i = 0; i < kW; ++i) {
    const int32_t v = acc[i] >> kPrecisionBits;
    dst[i] = static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
  }
}

// One output row of a pass: a weighted sum of n source rows. `width` is rounded up to 16 (the work
// buffers are padded, the padding's results are never read). The AVX2 clone is picked at load time on
// CPUs that have it (8 int32 lanes per multiply), SSE4.1 (pmulld, 4 lanes) on older ones; the default
// clone runs on any x86-64.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)  // ifunc-based clones need ELF + glibc
__attribute__((target_clones("avx2", "sse4.1", "default")))
#endif
void combine_rows(const uint8_t* src, size_t stride, int width, const int32_t* k, int n, uint8_t* dst) {
  int x = 0;
  for (; x + 64 <= width; x += 64) combine_block<64>(src + x, stride, k, n, dst + x);
  for (; x < width; x += 16) combine_block<16>(src + x, stride, k, n, dst + x);
}

inline int pad16(int n) { return (n + 15) & ~15; }

// dst[x * dst_stride + y] = src[y * src_stride + x] (strides in elements), in cache-sized blocks.
template <typename E>
void transpose(const E* src, ptrdiff_t src_stride, int h, int w, E* dst, ptrdiff_t dst_stride) {
  constexpr int B = 16;
  for (int y0 = 0; y0 < h; y0 += B) {
    const int y1 = std::min(h, y0 + B);
    for (int x0 = 0; x0 < w; x0 += B) {
      const int x1 = std::min(w, x0 + B);
      for (int y = y0; y < y1; ++y) {
        const E* s = src + y * src_stride;
        for (int x = x0; x < x1; ++x) dst[x * dst_stride + y] = s[x];
      }
    }
  }
}

// 32-bit pixels (RGBX): 4x4 blocks through SSE2 registers (part of every x86-64), scalar edges.
void transpose32(const uint32_t* src, ptrdiff_t ss, int h, int w, uint32_t* dst, ptrdiff_t ds) {
#if defined(__SSE2__)
  constexpr int B = 16;
  for (int y0 = 0; y0 < h; y0 += B) {
    const int y1 = std::min(h, y0 + B);
    for (int x0 = 0; x0 < w; x0 += B) {
      const int x1 = std::min(w, x0 + B);
      int y = y0;
      for (; y + 4 <= y1; y += 4) {
        int x = x0;
        for (; x + 4 <= x1; x += 4) {
          const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + y * ss + x));
          const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (y + 1) * ss + x));
          const __m128i r2 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (y + 2) * ss + x));
          const __m128i r3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + (y + 3) * ss + x));
          const __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpackhi_epi32(r0, r1);
          const __m128i t2 = _mm_unpacklo_epi32(r2, r3), t3 = _mm_unpackhi_epi32(r2, r3);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x * ds + y), _mm_unpacklo_epi64(t0, t2));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (x + 1) * ds + y), _mm_unpackhi_epi64(t0, t2));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (x + 2) * ds + y), _mm_unpacklo_epi64(t1, t3));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (x + 3) * ds + y), _mm_unpackhi_epi64(t1, t3));
        }
        for (; x < x1; ++x)
          for (int yy = y; yy < y + 4; ++yy) dst[x * ds + yy] = src[yy * ss + x];
      }
      for (; y < y1; ++y)
        for (int x = x0; x < x1; ++x) dst[x * ds + y] = src[y * ss + x];
    }
  }
#else
  transpose<uint32_t>(src, ss, h, w, dst, ds);
#endif
}

// Per-thread work buffers: no allocation per image once a thread has seen the largest size.
struct ResizeScratch {
  std::vector<uint8_t> t, mid_t, mid, row;
};
ResizeScratch& scratch() {
  thread_local ResizeScratch s;
  return s;
}

}  // namespace

WindowResize::WindowResize(int top_, int left_, int bh, int bw, int oh, int ow, int ky, int kx, int kh, int kw, Filter filter)
    : ax(axis_coeffs(bw, ow, kx, kw, filter)), ay(axis_coeffs(bh, oh, ky, kh, filter)), top(top_), left(left_) {}

Filter parse_filter(const std::string& name) {
  if (name == "bicubic") return Filter::kBicubic;
  if (name == "bilinear") return Filter::kBilinear;
  if (name == "hamming") return Filter::kHamming;
  if (name == "lanczos") return Filter::kLanczos;
  throw std::invalid_argument("unknown interpolation '" + name + "' (bicubic, bilinear, hamming, lanczos)");
}

// Both passes run as "weighted sums of whole rows" (contiguous, vectorised): the source rectangle is
// first transposed so that the horizontal pass also combines rows, then transposed back for the
// vertical pass. RGB travels as 4-byte pixels (R, G, B, unused) so the three channels share every
// instruction; other channel counts go plane by plane. Integer sums are Pillow's, so bytes are equal.
void WindowResize::run(const PixelView& v, uint8_t* out) const {
  const int ry = src_y0(), rx = src_x0(), th = ay.hi - ay.lo, tw = ax.hi - ax.lo;
  const int kw = out_w(), kh = out_h();
  if (ry < v.y0 || rx < v.x0 || ry + th > v.y0 + v.h || rx + tw > v.x0 + v.w)
    throw std::logic_error("resize: the pixels given do not cover the source rectangle");
  if (v.c != 1 && v.c != 3) {
    for (int ch = 0; ch < v.c; ++ch) {
      PixelView one = v;
      one.c = 1;
      one.p = v.p + ch * v.ch_stride;
      run(one, out + static_cast<size_t>(ch) * kh * kw);
    }
    return;
  }
  const int E = v.c == 1 ? 1 : 4;  // bytes per pixel in the work buffers
  const int ths = pad16(E * th) / E, kws = pad16(E * kw) / E;  // padded row lengths, in pixels
  ResizeScratch& s = scratch();
  s.t.resize(static_cast<size_t>(tw) * ths * E);
  s.mid_t.resize(static_cast<size_t>(kw) * ths * E);
  s.mid.resize(static_cast<size_t>(th) * kws * E);
  s.row.resize(static_cast<size_t>(kws) * E);
  const uint8_t* base = v.p + (ry - v.y0) * v.row_stride + (rx - v.x0) * v.px_stride;
  // 1. Source rectangle -> t, one row per source column.
  if (E == 1) {
    if (v.px_stride == 1) {
      transpose<uint8_t>(base, v.row_stride, th, tw, s.t.data(), ths);
    } else {
      for (int y = 0; y < th; ++y)
        for (int x = 0; x < tw; ++x) s.t[static_cast<size_t>(x) * ths + y] = base[y * v.row_stride + x * v.px_stride];
    }
  } else if (v.px_stride == 4 && v.ch_stride == 1 && v.row_stride % 4 == 0 && reinterpret_cast<uintptr_t>(base) % 4 == 0) {
    // RGBX decoder rows: a plain 32-bit transpose.
    transpose32(reinterpret_cast<const uint32_t*>(base), v.row_stride / 4, th, tw, reinterpret_cast<uint32_t*>(s.t.data()), ths);
  } else {
    uint8_t* t = s.t.data();
    for (int y = 0; y < th; ++y) {
      const uint8_t* r = base + y * v.row_stride;
      for (int x = 0; x < tw; ++x) {
        const uint8_t* px = r + x * v.px_stride;
        uint8_t* d = t + (static_cast<size_t>(x) * ths + y) * 4;
        d[0] = px[0], d[1] = px[v.ch_stride], d[2] = px[2 * v.ch_stride], d[3] = 0;
      }
    }
  }
  // 2. Horizontal pass (rows of t), only for the kept output columns.
  const size_t tstride = static_cast<size_t>(ths) * E;
  for (int j = 0; j < kw; ++j)
    combine_rows(s.t.data() + static_cast<size_t>(ax.start[j] - ax.lo) * tstride, tstride, E * th, &ax.k[static_cast<size_t>(j) * ax.ksize], ax.count[j],
                 s.mid_t.data() + static_cast<size_t>(j) * tstride);
  // 3. Back to row order.
  if (E == 1) transpose<uint8_t>(s.mid_t.data(), ths, kw, th, s.mid.data(), kws);
  else transpose32(reinterpret_cast<const uint32_t*>(s.mid_t.data()), ths, kw, th, reinterpret_cast<uint32_t*>(s.mid.data()), kws);
  // 4. Vertical pass, only for the kept output rows; RGB pixels split into planes.
  const size_t mstride = static_cast<size_t>(kws) * E;
  const size_t plane = static_cast<size_t>(kh) * kw;
  for (int i = 0; i < kh; ++i) {
    uint8_t* o = out + static_cast<size_t>(i) * kw;
    const uint8_t* src = s.mid.data() + static_cast<size_t>(ay.start[i] - ay.lo) * mstride;
    const int32_t* k = &ay.k[static_cast<size_t>(i) * ay.ksize];
    if (E == 1 && kws == kw) {
      combine_rows(src, mstride, kw, k, ay.count[i], o);
      continue;
    }
    combine_rows(src, mstride, E * kw, k, ay.count[i], s.row.data());
    if (E == 1) {
      std::memcpy(o, s.row.data(), kw);
    } else {
      // Distinct restrict pointers: byte stores may otherwise alias the row and stop vectorisation.
      const uint8_t* __restrict r = s.row.data();
      uint8_t* __restrict o0 = o;
      uint8_t* __restrict o1 = o + plane;
      uint8_t* __restrict o2 = o + 2 * plane;
      for (int x = 0; x < kw; ++x) o0[x] = r[4 * x], o1[x] = r[4 * x + 1], o2[x] = r[4 * x + 2];
    }
  }
}

void pil_resize_bicubic(const Planar& in, int out_h, int out_w, Planar& out) { pil_resize(in, out_h, out_w, out, Filter::kBicubic); }

void pil_resize(const Planar& in, int out_h, int out_w, Planar& out, Filter filter) {
  if (out_h <= 0 || out_w <= 0) throw std::invalid_argument("resize: output size must be positive");
  if (in.h <= 0 || in.w <= 0) throw std::invalid_argument("resize: empty input image");
  out.c = in.c;
  out.h = out_h;
  out.w = out_w;
  out.px.resize(static_cast<size_t>(in.c) * out_h * out_w);
  if (out_h == in.h && out_w == in.w) {
    std::memcpy(out.px.data(), in.px.data(), out.px.size());
    return;
  }
  WindowResize(0, 0, in.h, in.w, out_h, out_w, 0, 0, out_h, out_w, filter).run(PixelView::of(in), out.px.data());
}

// ---- decoding ---------------------------------------------------------------

namespace {

#ifdef MOOD_HAVE_LIBJPEG
struct JpegErr {
  jpeg_error_mgr pub;
  jmp_buf jump;
  char msg[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr c) {
  JpegErr* e = reinterpret_cast<JpegErr*>(c->err);
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jump, 1);
}
void jpeg_quiet(j_common_ptr, int) {}

// A memory source that feeds a fake EOI where the data runs out: libjpeg then decodes the rest of the
// image from empty coefficients (mid grey), exactly what PIL gives with LOAD_TRUNCATED_IMAGES.
struct JpegSrc {
  jpeg_source_mgr pub;
  const uint8_t* data;
  size_t size;
  bool truncated;
  JOCTET eoi[2];
};

void src_init(j_decompress_ptr) {}
boolean src_fill(j_decompress_ptr c) {
  JpegSrc* s = reinterpret_cast<JpegSrc*>(c->src);
  s->truncated = true;
  s->eoi[0] = 0xFF;
  s->eoi[1] = JPEG_EOI;
  s->pub.next_input_byte = s->eoi;
  s->pub.bytes_in_buffer = 2;
  return TRUE;
}
void src_skip(j_decompress_ptr c, long n) {
  JpegSrc* s = reinterpret_cast<JpegSrc*>(c->src);
  while (n > static_cast<long>(s->pub.bytes_in_buffer)) {
    n -= static_cast<long>(s->pub.bytes_in_buffer);
    src_fill(c);
  }
  s->pub.next_input_byte += n;
  s->pub.bytes_in_buffer -= n;
}
void src_term(j_decompress_ptr) {}

// Errors longjmp to the caller's setjmp; warnings (corrupt data that libjpeg decodes around) are silent.
void quiet_errors(jpeg_decompress_struct& c, JpegErr& err) {
  c.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_fail;
  err.pub.emit_message = jpeg_quiet;
}

// Opt-in reduced-DCT decoding: the smallest scale 1/8, 1/4 or 1/2 whose shorter side is still
// >= min_short. Only these have SIMD IDCTs in libjpeg-turbo; the other n/8 run plain C and are slower
// than a full-size decode (measured: 6/8 of a 500x375 JPEG costs more than 8/8).
void choose_scale(jpeg_decompress_struct& c, int min_short) {
  const long short_side = std::min(c.image_width, c.image_height);
  for (int n = 1; n < 8; n *= 2)
    if ((short_side * n + 7) / 8 >= min_short) {
      c.scale_num = static_cast<unsigned>(n);
      c.scale_denom = 8;
      break;
    }
}

void attach_source(jpeg_decompress_struct& c, JpegSrc& src, const uint8_t* data, size_t size) {
  src.data = data;
  src.size = size;
  src.pub.next_input_byte = data;
  src.pub.bytes_in_buffer = size;
  src.pub.init_source = src_init;
  src.pub.fill_input_buffer = src_fill;
  src.pub.skip_input_data = src_skip;
  src.pub.resync_to_restart = jpeg_resync_to_restart;
  src.pub.term_source = src_term;
  c.src = &src.pub;
}

inline uint8_t muldiv255(int a, int b) {
  int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

DecodeStatus decode_jpeg(const uint8_t* data, size_t size, Planar& out, std::string& message, int min_short) {
  jpeg_decompress_struct c;
  JpegErr err;
  quiet_errors(c, err);
  JpegSrc src{};
  std::vector<uint8_t> row;
  volatile bool started = false;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&c);
    message = err.msg;
    // Rows decoded before a mid-image error are kept (PIL keeps them with LOAD_TRUNCATED_IMAGES).
    return started ? DecodeStatus::kTruncated : DecodeStatus::kCorrupt;
  }
  jpeg_create_decompress(&c);
  attach_source(c, src, data, size);
  jpeg_read_header(&c, TRUE);
  const int comps = c.num_components;
  if (c.jpeg_color_space == JCS_GRAYSCALE) c.out_color_space = JCS_GRAYSCALE;
  else if (comps == 4) c.out_color_space = JCS_CMYK;
  else c.out_color_space = JCS_RGB;
  if (min_short > 0) choose_scale(c, min_short);
  jpeg_start_decompress(&c);
  const int W = static_cast<int>(c.output_width), H = static_cast<int>(c.output_height), oc = c.output_components;
  out.c = oc == 1 ? 1 : 3;
  out.h = H;
  out.w = W;
  out.px.assign(static_cast<size_t>(out.c) * H * W, 0);
  started = true;
  // Several scanlines per call (libjpeg-turbo's output buffer height), then de-interleave.
  const int chunk = 16;
  row.resize(static_cast<size_t>(W) * oc * chunk);
  JSAMPROW rows[chunk];
  for (int i = 0; i < chunk; ++i) rows[i] = row.data() + static_cast<size_t>(i) * W * oc;
  while (c.output_scanline < c.output_height) {
    const int y0 = static_cast<int>(c.output_scanline);
    const int got = static_cast<int>(jpeg_read_scanlines(&c, rows, chunk));
    if (got <= 0) break;
    for (int k = 0; k < got; ++k) {
      const int y = y0 + k;
      const uint8_t* rp = rows[k];
      if (oc == 1) {
        std::memcpy(out.plane(0) + static_cast<size_t>(y) * W, rp, W);
      } else if (oc == 3) {
        uint8_t* o0 = out.plane(0) + static_cast<size_t>(y) * W;
        uint8_t* o1 = out.plane(1) + static_cast<size_t>(y) * W;
        uint8_t* o2 = out.plane(2) + static_cast<size_t>(y) * W;
        for (int x = 0; x < W; ++x) {
          o0[x] = rp[3 * x];
          o1[x] = rp[3 * x + 1];
          o2[x] = rp[3 * x + 2];
        }
      } else {
        // PIL reads CMYK JPEGs inverted (Adobe convention, "CMYK;I") and converts with
        // r = (255 - k) - (c * (255 - k)) / 255 per channel.
        for (int x = 0; x < W; ++x) {
          const uint8_t* px = rp + static_cast<size_t>(x) * 4;
          const int nk = px[3];  // 255 - k with k = 255 - raw
          for (int p = 0; p < 3; ++p) {
            int cc = 255 - px[p];
            int v = nk - muldiv255(cc, nk);
            out.plane(p)[static_cast<size_t>(y) * W + x] = static_cast<uint8_t>(v < 0 ? 0 : v);
          }
        }
      }
    }
  }
  if (src.truncated) {
    jpeg_abort_decompress(&c);
    jpeg_destroy_decompress(&c);
    message = "premature end of JPEG data";
    return DecodeStatus::kTruncated;
  }
  jpeg_finish_decompress(&c);
  jpeg_destroy_decompress(&c);
  return DecodeStatus::kOk;
}

#if defined(LIBJPEG_TURBO_VERSION) && defined(JCS_EXTENSIONS)
// decode_jpeg_region's body (see image_ops.h). Everything that could make the partial result differ
// from the full path's (CMYK, a missing EOI, libjpeg reaching the end of the data, an error) returns
// false so the caller decodes the whole file with decode_jpeg instead.
bool jpeg_region(const uint8_t* data, size_t size, RegionPicker& picker, std::vector<uint8_t>& buf, PixelView& view, int min_short) {
  if (size < 4 || data[size - 2] != 0xFF || data[size - 1] != JPEG_EOI) return false;
  jpeg_decompress_struct c;
  JpegErr err;
  quiet_errors(c, err);
  JpegSrc src{};
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&c);
    return false;
  }
  jpeg_create_decompress(&c);
  attach_source(c, src, data, size);
  jpeg_read_header(&c, TRUE);
  const bool grey = c.jpeg_color_space == JCS_GRAYSCALE;
  if (!grey && c.num_components != 3) {
    jpeg_destroy_decompress(&c);
    return false;
  }
  c.out_color_space = grey ? JCS_GRAYSCALE : JCS_EXT_RGBX;
  if (min_short > 0) choose_scale(c, min_short);
  jpeg_calc_output_dimensions(&c);  // the (possibly scaled) image the picker plans on
  const int H = static_cast<int>(c.output_height), W = static_cast<int>(c.output_width);
  int rect[4];
  if (!picker.pick(H, W, rect) || rect[0] < 0 || rect[1] > H || rect[0] >= rect[1] || rect[2] < 0 || rect[3] > W || rect[2] >= rect[3]) {
    jpeg_destroy_decompress(&c);
    return false;
  }
  jpeg_start_decompress(&c);
  // One iMCU of context beyond the rectangle: the fancy (smoothing) chroma upsampler then sees the
  // same neighbours as in a full decode (libjpeg treats a crop's edge as an image edge).
  const int mx = c.max_h_samp_factor * DCTSIZE, my = c.max_v_samp_factor * DCTSIZE;
  JDIMENSION xoff = static_cast<JDIMENSION>(std::max(0, rect[2] - mx));
  JDIMENSION xw = static_cast<JDIMENSION>(std::min(W, rect[3] + mx)) - xoff;
  if (xoff > 0 || static_cast<int>(xw) < W) jpeg_crop_scanline(&c, &xoff, &xw);  // widens to iMCU bounds
  const int oc = c.output_components, ow = static_cast<int>(c.output_width);
  const int first = std::max(0, rect[0] - my);
  if (first > 0 && jpeg_skip_scanlines(&c, static_cast<JDIMENSION>(first)) != static_cast<JDIMENSION>(first)) {
    jpeg_destroy_decompress(&c);
    return false;
  }
  const size_t row = static_cast<size_t>(ow) * oc;
  buf.resize(static_cast<size_t>(rect[1] - first) * row);
  while (static_cast<int>(c.output_scanline) < rect[1]) {
    JSAMPROW rows[16];  // several rows per call, straight into buf
    const int y = static_cast<int>(c.output_scanline), k = std::min(16, rect[1] - y);
    for (int i = 0; i < k; ++i) rows[i] = buf.data() + static_cast<size_t>(y + i - first) * row;
    if (jpeg_read_scanlines(&c, rows, static_cast<JDIMENSION>(k)) == 0) break;
  }
  const bool complete = static_cast<int>(c.output_scanline) >= rect[1] && !src.truncated;
  jpeg_abort_decompress(&c);  // rows below the rectangle are never decoded
  jpeg_destroy_decompress(&c);
  if (!complete) return false;
  view.p = buf.data() + static_cast<size_t>(rect[0] - first) * row;
  view.c = grey ? 1 : 3;
  view.y0 = rect[0];
  view.x0 = static_cast<int>(xoff);
  view.h = rect[1] - rect[0];
  view.w = ow;
  view.ch_stride = 1;
  view.row_stride = static_cast<ptrdiff_t>(row);
  view.px_stride = oc;
  return true;
}
#define MOOD_HAVE_JPEG_REGION 1
#endif  // libjpeg-turbo
#endif

#ifdef MOOD_HAVE_LIBPNG
// Progressive (push) reading: rows are emitted as soon as the compressed data for them has arrived,
// so a truncated file keeps every complete row and the rest stays black — PIL's incremental decoder
// with LOAD_TRUNCATED_IMAGES does the same.
struct PngState {
  std::string msg;
  std::vector<uint8_t> buf;
  int w = 0, h = 0, ch = 0;
  int bps = 1;  // bytes per sample in buf (2: 16-bit grey kept for PIL's clipping)
  bool have_info = false, done = false;
};

void png_fail(png_structp p, png_const_charp m) {
  static_cast<PngState*>(png_get_error_ptr(p))->msg = m;
  png_longjmp(p, 1);  // to the setjmp(png_jmpbuf(p)) in decode_png
}
void png_quiet(png_structp, png_const_charp) {}

void png_on_info(png_structp p, png_infop info) {
  PngState* st = static_cast<PngState*>(png_get_progressive_ptr(p));
  const int color = png_get_color_type(p, info);
  const int depth = png_get_bit_depth(p, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  // PIL opens 16-bit grey as mode 'I' and convert('RGB') clips values to 255; other 16-bit images keep
  // the high byte.
  const bool grey16 = depth == 16 && color == PNG_COLOR_TYPE_GRAY;
  if (depth == 16 && !grey16) png_set_strip_16(p);
  st->bps = grey16 ? 2 : 1;
  png_set_strip_alpha(p);                // convert('RGB') drops alpha (also palette tRNS)
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  st->w = static_cast<int>(png_get_image_width(p, info));
  st->h = static_cast<int>(png_get_image_height(p, info));
  st->ch = png_get_channels(p, info);
  if (st->ch < 1 || st->ch > 4) png_error(p, "unexpected channel count after conversion");
  if (static_cast<int64_t>(st->w) * st->h > (int64_t(1) << 30)) png_error(p, "image too large");
  st->buf.assign(static_cast<size_t>(st->w) * st->h * st->ch * st->bps, 0);
  st->have_info = true;
}
void png_on_row(png_structp p, png_bytep row, png_uint_32 y, int) {
  PngState* st = static_cast<PngState*>(png_get_progressive_ptr(p));
  if (!row || static_cast<int>(y) >= st->h) return;
  png_progressive_combine_row(p, st->buf.data() + static_cast<size_t>(y) * st->w * st->ch * st->bps, row);
}
void png_on_end(png_structp p, png_infop) { static_cast<PngState*>(png_get_progressive_ptr(p))->done = true; }

DecodeStatus decode_png(const uint8_t* data, size_t size, Planar& out, std::string& message) {
  PngState st;
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &st, png_fail, png_quiet);
  if (!p) {
    message = "libpng: out of memory";
    return DecodeStatus::kCorrupt;
  }
  png_infop info = png_create_info_struct(p);
  volatile bool failed = false;  // read after longjmp
  if (setjmp(png_jmpbuf(p))) {
    failed = true;
  } else {
    png_set_crc_action(p, PNG_CRC_WARN_USE, PNG_CRC_WARN_USE);
    png_set_progressive_read_fn(p, &st, png_on_info, png_on_row, png_on_end);
    png_process_data(p, info, const_cast<png_bytep>(data), size);
  }
  png_destroy_read_struct(&p, &info, nullptr);
  if (!st.have_info) {
    message = failed ? st.msg : "premature end of PNG data (no image header)";
    return DecodeStatus::kCorrupt;
  }
  out.c = st.ch >= 3 ? 3 : 1;  // any alpha left is ignored
  out.h = st.h;
  out.w = st.w;
  out.px.resize(static_cast<size_t>(out.c) * st.h * st.w);
  for (int y = 0; y < st.h; ++y)
    for (int pl = 0; pl < out.c; ++pl) {
      uint8_t* o = out.plane(pl) + static_cast<size_t>(y) * st.w;
      if (st.bps == 2) {
        const uint8_t* r = st.buf.data() + static_cast<size_t>(y) * st.w * 2;
        for (int x = 0; x < st.w; ++x) {
          const int v = (r[2 * x] << 8) | r[2 * x + 1];  // PNG samples are big-endian
          o[x] = static_cast<uint8_t>(v > 255 ? 255 : v);
        }
        continue;
      }
      const uint8_t* r = st.buf.data() + static_cast<size_t>(y) * st.w * st.ch + pl;
      for (int x = 0; x < st.w; ++x) o[x] = r[static_cast<size_t>(x) * st.ch];
    }
  if (failed || !st.done) {
    message = failed ? st.msg : "premature end of PNG data";
    return DecodeStatus::kTruncated;
  }
  return DecodeStatus::kOk;
}
#endif


// Uncompressed BMP (BITMAPINFOHEADER or later; 1/4/8-bit palette, 24-bit BGR, 32-bit BGRX), rows
// bottom-up or top-down: the common files, decoded as PIL does. RLE and bit-field layouts are refused.
DecodeStatus decode_bmp(const uint8_t* d, size_t size, Planar& out, std::string& message) {
  auto u16 = [d](size_t o) { return static_cast<uint32_t>(d[o] | (d[o + 1] << 8)); };
  auto u32 = [d](size_t o) { return static_cast<uint32_t>(d[o] | (d[o + 1] << 8) | (d[o + 2] << 16) | (static_cast<uint32_t>(d[o + 3]) << 24)); };
  if (size < 54) {
    message = "BMP header truncated";
    return DecodeStatus::kCorrupt;
  }
  const uint32_t offset = u32(10), hsize = u32(14);
  if (hsize < 40 || 14 + static_cast<size_t>(hsize) > size) {
    message = "unsupported BMP header (only BITMAPINFOHEADER and later)";
    return DecodeStatus::kUnsupported;
  }
  const int32_t w = static_cast<int32_t>(u32(18)), hraw = static_cast<int32_t>(u32(22));
  const uint32_t bpp = u16(28), comp = u32(30);
  uint32_t colors = u32(46);
  if (w <= 0 || hraw == 0 || w > 65535 || std::abs(hraw) > 65535) {
    message = "bad BMP dimensions";
    return DecodeStatus::kCorrupt;
  }
  if (comp != 0 || !(bpp == 1 || bpp == 4 || bpp == 8 || bpp == 24 || bpp == 32)) {
    message = "unsupported BMP encoding (compression " + std::to_string(comp) + ", " + std::to_string(bpp) + " bits)";
    return DecodeStatus::kUnsupported;
  }
  const bool bottom_up = hraw > 0;
  const int h = std::abs(hraw);
  uint8_t pal[256][3] = {};
  if (bpp <= 8) {
    if (colors == 0 || colors > (1u << bpp)) colors = 1u << bpp;
    const size_t po = 14 + hsize;
    if (po + 4 * static_cast<size_t>(colors) > size) {
      message = "BMP palette truncated";
      return DecodeStatus::kCorrupt;
    }
    for (uint32_t i = 0; i < colors; ++i) pal[i][0] = d[po + 4 * i + 2], pal[i][1] = d[po + 4 * i + 1], pal[i][2] = d[po + 4 * i];
  }
  const size_t stride = ((static_cast<size_t>(w) * bpp + 31) / 32) * 4;
  out.c = 3, out.h = h, out.w = w;
  out.px.assign(static_cast<size_t>(3) * h * w, 0);
  bool truncated = false;
  for (int r = 0; r < h; ++r) {
    const size_t ro = offset + static_cast<size_t>(r) * stride;
    const int y = bottom_up ? h - 1 - r : r;
    if (ro + (static_cast<size_t>(w) * bpp + 7) / 8 > size) {
      truncated = true;
      break;
    }
    const uint8_t* row = d + ro;
    for (int x = 0; x < w; ++x) {
      uint8_t rgb[3];
      if (bpp == 24 || bpp == 32) {
        const uint8_t* p = row + static_cast<size_t>(x) * (bpp / 8);
        rgb[0] = p[2], rgb[1] = p[1], rgb[2] = p[0];
      } else {
        const size_t bit = static_cast<size_t>(x) * bpp;
        const int idx = (row[bit / 8] >> (8 - bpp - static_cast<int>(bit % 8))) & ((1 << bpp) - 1);
        rgb[0] = pal[idx][0], rgb[1] = pal[idx][1], rgb[2] = pal[idx][2];
      }
      for (int c = 0; c < 3; ++c) out.plane(c)[static_cast<size_t>(y) * w + x] = rgb[c];
    }
  }
  if (truncated) {
    message = "premature end of BMP data";
    return DecodeStatus::kTruncated;
  }
  return DecodeStatus::kOk;
}

}  // namespace

DecodeStatus decode_image(const uint8_t* data, size_t size, Planar& out, std::string& message, int min_short) {
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) {
#ifdef MOOD_HAVE_LIBJPEG
    return decode_jpeg(data, size, out, message, min_short);
#else
    message = "JPEG support not built (libjpeg-turbo was not found at build time)";
    return DecodeStatus::kUnsupported;
#endif
  }
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 8 && std::memcmp(data, kPng, 8) == 0) {
#ifdef MOOD_HAVE_LIBPNG
    return decode_png(data, size, out, message);
#else
    message = "PNG support not built (libpng was not found at build time)";
    return DecodeStatus::kUnsupported;
#endif
  }
  if (size >= 2 && data[0] == 'B' && data[1] == 'M') return decode_bmp(data, size, out, message);
  message = "not a JPEG, PNG or BMP file";
  return DecodeStatus::kUnsupported;
}

bool decode_jpeg_region(const uint8_t* data, size_t size, RegionPicker& picker, std::vector<uint8_t>& buf, PixelView& view, int min_short) {
#ifdef MOOD_HAVE_JPEG_REGION
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return jpeg_region(data, size, picker, buf, view, min_short);
#endif
  (void)picker, (void)buf, (void)view, (void)min_short;
  return false;
}

}  // namespace img

namespace {

// The '\0'-separated `paths` attribute of the file batch ops.
std::vector<std::string> split_paths(const std::string& joined) {
  std::vector<std::string> paths;
  if (joined.empty()) return paths;
  for (size_t s = 0;;) {
    size_t e = joined.find('\0', s);
    paths.push_back(joined.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  return paths;
}

// Reads a whole file; on failure sets the kUnreadable status and a message.
bool read_file(const std::string& path, std::vector<uint8_t>& bytes, int32_t& status, std::string& msg) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) {
    status = static_cast<int32_t>(img::DecodeStatus::kUnreadable);
    msg = std::string("cannot open: ") + std::strerror(errno);
    return false;
  }
  std::streamsize n = f.tellg();
  f.seekg(0);
  bytes.resize(static_cast<size_t>(std::max<std::streamsize>(n, 0)));
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n)) {
    status = static_cast<int32_t>(img::DecodeStatus::kUnreadable);
    msg = "read error";
    return false;
  }
  return true;
}

// Per-sample messages as uint8 bytes, one '\n'-terminated line each (newlines inside become spaces).
at::Tensor message_bytes(const std::vector<std::string>& msgs) {
  std::string all;
  for (const auto& m : msgs) {
    for (char ch : m) all.push_back(ch == '\n' ? ' ' : ch);
    all.push_back('\n');
  }
  at::Tensor t = at::empty({static_cast<int64_t>(all.size())}, at::kByte);
  if (!all.empty()) std::memcpy(t.data_ptr<uint8_t>(), all.data(), all.size());
  return t;
}

int workers_attr(const OpArgs& a) {
  int64_t workers = a.get_int("workers", 0);
  if (workers <= 0) workers = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<int>(workers);
}

}  // namespace

void register_image_ops(const OpRegistry& add) {
  // image_resize: uint8 [C,H,W] -> uint8 [C,oh,ow], Pillow resize with attr 'filter' (default bicubic;
  // tests and previews).
  add("image_resize", {1, 1, 1, OpCost::kHeavy, {"size", "filter"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    at::Tensor x = in[0].contiguous();
    if (x.scalar_type() != at::kByte || x.dim() != 3) throw std::invalid_argument("image_resize: expected a uint8 [C, H, W] tensor");
    auto size = a.get_ints("size");
    if (size.size() != 2) throw std::invalid_argument("image_resize: 'size' must be [height, width]");
    img::Planar p;
    p.c = static_cast<int>(x.size(0));
    p.h = static_cast<int>(x.size(1));
    p.w = static_cast<int>(x.size(2));
    p.px.assign(x.data_ptr<uint8_t>(), x.data_ptr<uint8_t>() + x.numel());
    img::Planar o;
    img::pil_resize(p, static_cast<int>(size[0]), static_cast<int>(size[1]), o, img::parse_filter(a.get_string("filter", "bicubic")));
    at::Tensor out = at::empty({o.c, o.h, o.w}, at::kByte);
    std::memcpy(out.data_ptr<uint8_t>(), o.px.data(), o.px.size());
    return {out};
  });

  // image_batch([plan float64 [B, kPlanCols]]) with attrs paths ('\0'-separated) + transform attrs ->
  // images float32 [B,3,S,S], status int32 [B] (DecodeStatus), messages uint8 ('\n'-separated per
  // sample). Files are read and decoded on the sample threads, straight into the batch tensor.
  add("image_batch", {0, 1, 3, OpCost::kHeavy, {"paths", "geometry", "size", "resize_short", "pad", "mean0", "mean1", "mean2", "std0", "std1", "std2", "fill0", "fill1", "fill2", "erase_mode", "fast_decode", "workers"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    const std::vector<std::string> paths = split_paths(a.get_string("paths", ""));
    const int64_t B = static_cast<int64_t>(paths.size());
    const data::TransformConfig cfg = data::read_transform_config(a, "image_batch", "eval_resize");
    const bool train = cfg.geometry == data::Geometry::kTrainCrop || cfg.geometry == data::Geometry::kTrainRrc;
    at::Tensor plan;
    if (!in.empty()) {
      plan = in[0].to(at::kDouble).contiguous();
      if (plan.dim() != 2 || plan.size(0) != B || plan.size(1) != data::kPlanCols)
        throw std::invalid_argument("image_batch: plan must be float64 [B, " + std::to_string(data::kPlanCols) + "]");
    } else if (train) {
      throw std::invalid_argument("image_batch: training geometries need a plan");
    }
    const int S = cfg.size;
    // Opt-in reduced-DCT JPEG decoding for evaluation (the resize target is known before decoding).
    const int fast_short = a.get_bool("fast_decode", false) && cfg.geometry == data::Geometry::kEvalResize ? cfg.resize_short : 0;
    // Samples that fail are zeroed below; the others are written in full.
    at::Tensor out = at::empty({B, 3, S, S}, at::kFloat);
    at::Tensor status = at::zeros({B}, at::kInt);
    std::vector<std::string> msgs(B);
    float* o = out.data_ptr<float>();
    int32_t* st = status.data_ptr<int32_t>();
    const double* pl = plan.defined() ? plan.data_ptr<double>() : nullptr;
    const int workers = workers_attr(a);
    // Samples are handed out one at a time (an image's cost varies with its size and plan), so no
    // thread idles while another has a queue; each sample's output depends only on its own plan row.
    const size_t sample_floats = static_cast<size_t>(3) * S * S;
    // One sample: read, decode, transform into dst; false when nothing usable was written.
    auto sample = [&](int64_t i, float* dst, std::vector<uint8_t>& bytes) -> bool {
      if (!read_file(paths[i], bytes, st[i], msgs[i])) return false;
      const double* row = pl ? pl + i * data::kPlanCols : nullptr;
      // Partial decode of what the crop keeps (PIL-exact); the full path when that cannot be used.
      if (data::transform_encoded(bytes.data(), bytes.size(), cfg, row, dst, fast_short)) return true;
      img::Planar im;
      std::string m;
      img::DecodeStatus s = img::decode_image(bytes.data(), bytes.size(), im, m, fast_short);
      st[i] = static_cast<int32_t>(s);
      msgs[i] = m;
      if (s != img::DecodeStatus::kOk && s != img::DecodeStatus::kTruncated) return false;
      data::transform_sample(im, cfg, row, dst);
      return true;
    };
    parallel_items_on(workers, B, [&](int64_t i) {
      std::vector<uint8_t> bytes;
      float* dst = o + i * static_cast<int64_t>(sample_floats);
      bool written = false;
      try {
        written = sample(i, dst, bytes);
      } catch (const std::exception& e) {
        st[i] = static_cast<int32_t>(img::DecodeStatus::kCorrupt);
        msgs[i] = e.what();
      }
      if (!written) std::fill(dst, dst + sample_floats, 0.0f);
    });
    return {out, status, message_bytes(msgs)};
  });

  // image_beit_batch(plan float64 [B, kBeitPlanCols]) with attrs paths + BEiT view attrs (see
  // data::read_beit_config) -> patches float32 [B,3,S,S], tokens float32 [B,3,S2,S2], status int32 [B],
  // messages uint8: files read and decoded on the sample threads, then data::beit_views. Failed
  // samples are zeros with their status set (the loader drops or reports them).
  add("image_beit_batch", {1, 1, 4, OpCost::kHeavy, {"paths", "size", "second_size", "interpolation", "second_interpolation", "mean0", "mean1", "mean2", "std0", "std1", "std2", "workers"}}, [](const std::vector<at::Tensor>& in, const OpArgs& a) -> std::vector<at::Tensor> {
    const std::vector<std::string> paths = split_paths(a.get_string("paths", ""));
    const int64_t B = static_cast<int64_t>(paths.size());
    const data::BeitViewsConfig cfg = data::read_beit_config(a);
    at::Tensor plan = in[0].to(at::kDouble).contiguous();
    if (plan.dim() != 2 || plan.size(0) != B || plan.size(1) != data::kBeitPlanCols)
      throw std::invalid_argument("image_beit_batch: plan must be float64 [B, " + std::to_string(data::kBeitPlanCols) + "]");
    const int64_t S = cfg.size, S2 = cfg.second_size;
    at::Tensor patches = at::empty({B, 3, S, S}, at::kFloat), tokens = at::empty({B, 3, S2, S2}, at::kFloat);
    at::Tensor status = at::zeros({B}, at::kInt);
    std::vector<std::string> msgs(B);
    float* p = patches.data_ptr<float>();
    float* t = tokens.data_ptr<float>();
    int32_t* st = status.data_ptr<int32_t>();
    const double* pl = plan.data_ptr<double>();
    parallel_items_on(workers_attr(a), B, [&](int64_t i) {
      float* pi = p + i * 3 * S * S;
      float* ti = t + i * 3 * S2 * S2;
      bool written = false;
      try {
        std::vector<uint8_t> bytes;
        if (read_file(paths[i], bytes, st[i], msgs[i])) {
          img::Planar im;
          img::DecodeStatus s = img::decode_image(bytes.data(), bytes.size(), im, msgs[i]);
          st[i] = static_cast<int32_t>(s);
          if (s == img::DecodeStatus::kOk || s == img::DecodeStatus::kTruncated) {
            data::beit_views(im, cfg, pl + i * data::kBeitPlanCols, pi, ti);
            written = true;
          }
        }
      } catch (const std::exception& e) {
        st[i] = static_cast<int32_t>(img::DecodeStatus::kCorrupt);
        msgs[i] = e.what();
      }
      if (!written) {
        std::fill(pi, pi + 3 * S * S, 0.0f);
        std::fill(ti, ti + 3 * S2 * S2, 0.0f);
      }
    });
    return {patches, tokens, status, message_bytes(msgs)};
  });
}

}  // namespace mood
