// Pre- and post-processing of the webcam page, written to match `asbunet.Segmenter` (src/asbunet/inference/:
// preprocess.py, postprocess.py, segmenter.py) and the video pipeline's `TemporalSmoother`
// (src/asbunet/segment/video.py):
//
// - network size: the long side becomes the model's input size, the short side follows the aspect ratio rounded to
//   a multiple of 16 (`network_size`);
// - resize: OpenCV's INTER_AREA when the frame is taller or wider than the network input, else INTER_LINEAR (both
//   with OpenCV's uint8 arithmetic) (`prepare_at`);
// - normalization: RGB / 255, minus the ImageNet mean, over its standard deviation, as float32 (3, h, w)
//   (`normalize`);
// - logits resized bilinearly (INTER_LINEAR, half-pixel centres, edges clamped) to the frame's size, then the
//   sigmoid clipped at +-30 (`logits_to_probability`), or, for a model that carries a refinement, resized along the
//   frame's edges by it (web/refine.js, `GuidedRefine`), as `Segmenter.predict` does;
// - optional exponential moving average of the probabilities, s_t = m s_{t-1} + (1 - m) p_t (`TemporalSmoother`);
// - mask: probability >= threshold, compared in float32 (`binarize`, `Segmenter.mask`).
//
// The constants (input size, threshold, mean, std, size multiple, smoothing momentum) come from models/models.json,
// which `web/serve.py` writes from the ONNX files' metadata and the package.

/** Network input [h, w] for a frame [height, width]: long side `inputSize`, short side a multiple of `multiple`. */
export function networkSize(height, width, inputSize, multiple) {
  const scale = inputSize / Math.max(height, width);
  // Python's round() rounds halves to even; so does this.
  const h = Math.max(multiple, roundHalfEven((height * scale) / multiple) * multiple);
  const w = Math.max(multiple, roundHalfEven((width * scale) / multiple) * multiple);
  return height >= width ? [inputSize, w] : [h, inputSize];
}

/** Round half to even (Python's `round`, NumPy's `rint`, OpenCV's `cvRound`). */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function clampByte(v) {
  return v <= 0 ? 0 : v >= 255 ? 255 : roundHalfEven(v);
}

/** OpenCV's area weights along one axis (`computeResizeAreaTab`): for each output index, [[source index, weight]]. */
export function areaTable(src, dst) {
  const scale = src / dst;
  const table = [];
  for (let d = 0; d < dst; d++) {
    const f1 = d * scale;
    const f2 = f1 + scale;
    const cell = Math.min(scale, src - f1);
    let s2 = Math.min(Math.floor(f2), src - 1);
    const s1 = Math.min(Math.ceil(f1), s2);
    const taps = [];
    if (s1 - f1 > 1e-3) taps.push([s1 - 1, (s1 - f1) / cell]);
    for (let s = s1; s < s2; s++) taps.push([s, 1 / cell]);
    if (f2 - s2 > 1e-3) taps.push([s2, Math.min(Math.min(f2 - s2, 1), cell) / cell]);
    table.push(taps);
  }
  return table;
}

/**
 * Two-tap interpolation along one axis, for each output index [i0, i1, weight of i1]: OpenCV's INTER_LINEAR, or with
 * `area` the taps its INTER_AREA uses when the image grows along either axis.
 */
export function linearTable(src, dst, area = false) {
  const scale = src / dst;
  const i0 = new Int32Array(dst);
  const i1 = new Int32Array(dst);
  const w1 = new Float32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f;
    let s;
    if (area) {
      s = Math.floor(d * scale);
      f = d + 1 - (s + 1) / scale;
      f = f <= 0 ? 0 : f - Math.floor(f);
    } else {
      f = (d + 0.5) * scale - 0.5;
      s = Math.floor(f);
      f -= s;
    }
    if (s < 0) {
      f = 0;
      s = 0;
    }
    if (s >= src - 1) {
      f = 0;
      s = src - 1;
    }
    i0[d] = s;
    i1[d] = Math.min(s + 1, src - 1);
    w1[d] = f;
  }
  return { i0, i1, w1 };
}

/**
 * RGBA pixels (H, W, 4) -> RGB uint8 (h, w, 3), resized as `asbunet.inference.preprocess` does: OpenCV's INTER_AREA
 * when the frame is taller or wider than the network input, else INTER_LINEAR.
 */
export function resizeRGB(rgba, height, width, h, w) {
  const out = new Uint8ClampedArray(h * w * 3);
  const area = height > h || width > w;
  if (area && height >= h && width >= w) {
    // separable: rows first (source rows weighted into each output row), then columns, in float64
    const ty = areaTable(height, h);
    const tx = areaTable(width, w);
    const rows = new Float64Array(width * 3);
    for (let y = 0; y < h; y++) {
      rows.fill(0);
      for (const [sy, wy] of ty[y]) {
        const base = sy * width * 4;
        for (let x = 0, p = base, q = 0; x < width; x++, p += 4, q += 3) {
          rows[q] += rgba[p] * wy;
          rows[q + 1] += rgba[p + 1] * wy;
          rows[q + 2] += rgba[p + 2] * wy;
        }
      }
      const o = y * w * 3;
      for (let x = 0; x < w; x++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (const [sx, wx] of tx[x]) {
          r += rows[sx * 3] * wx;
          g += rows[sx * 3 + 1] * wx;
          b += rows[sx * 3 + 2] * wx;
        }
        out[o + x * 3] = clampByte(r);
        out[o + x * 3 + 1] = clampByte(g);
        out[o + x * 3 + 2] = clampByte(b);
      }
    }
    return out;
  }
  // OpenCV's fixed-point two-tap interpolation for uint8 (INTER_LINEAR, or INTER_AREA where the frame grows along
  // an axis): 11-bit coefficients, rows first, then the vertical sum as its SIMD path rounds it
  const ly = linearTable(height, h, area);
  const lx = linearTable(width, w, area);
  const cx0 = new Int32Array(w);
  const cx1 = new Int32Array(w);
  for (let x = 0; x < w; x++) {
    cx0[x] = Math.round((1 - lx.w1[x]) * 2048);
    cx1[x] = Math.round(lx.w1[x] * 2048);
  }
  const row = (sy, buffer) => {
    const base = sy * width * 4;
    for (let x = 0; x < w; x++) {
      const p0 = base + lx.i0[x] * 4;
      const p1 = base + lx.i1[x] * 4;
      for (let c = 0; c < 3; c++) buffer[x * 3 + c] = rgba[p0 + c] * cx0[x] + rgba[p1 + c] * cx1[x];
    }
  };
  const top = new Int32Array(w * 3);
  const bottom = new Int32Array(w * 3);
  for (let y = 0; y < h; y++) {
    const b0 = Math.round((1 - ly.w1[y]) * 2048);
    const b1 = Math.round(ly.w1[y] * 2048);
    row(ly.i0[y], top);
    row(ly.i1[y], bottom);
    const o = y * w * 3;
    for (let i = 0; i < w * 3; i++) {
      out[o + i] = (((b0 * (top[i] >> 4)) >> 16) + ((b1 * (bottom[i] >> 4)) >> 16) + 2) >> 2;
    }
  }
  return out;
}

/** RGB uint8 (h, w, 3) -> normalized float32 (3, h, w): (x / 255 - mean) / std, in float32 like NumPy. */
export function normalize(rgb, h, w, mean, std) {
  const n = h * w;
  const out = new Float32Array(3 * n);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c]);
    const s = f(std[c]);
    const plane = c * n;
    for (let i = 0; i < n; i++) out[plane + i] = f(f(f(rgb[i * 3 + c] / 255) - m) / s);
  }
  return out;
}

/**
 * Network logits (h, w) -> person probability (height, width) float32: bilinear resize (OpenCV INTER_LINEAR),
 * then the sigmoid with logits clipped at +-30.
 */
export function logitsToProbability(logits, h, w, height, width) {
  const lx = linearTable(w, width);
  const ly = linearTable(h, height);
  const rows = new Float32Array(h * width); // logits resized along x first
  for (let y = 0; y < h; y++) {
    const base = y * w;
    for (let x = 0; x < width; x++) {
      const fx = lx.w1[x];
      rows[y * width + x] = logits[base + lx.i0[x]] * (1 - fx) + logits[base + lx.i1[x]] * fx;
    }
  }
  const prob = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    const a = ly.i0[y] * width;
    const b = ly.i1[y] * width;
    const fy = ly.w1[y];
    const o = y * width;
    for (let x = 0; x < width; x++) {
      const v = rows[a + x] * (1 - fy) + rows[b + x] * fy;
      const clipped = v < -30 ? -30 : v > 30 ? 30 : v;
      prob[o + x] = 1 / (1 + Math.exp(-clipped));
    }
  }
  return prob;
}

/**
 * The video pipeline's default smoother (`asbunet.frames.temporal.ConfidenceGatedEMA`): a moving average whose
 * memory fades where the probability changes, `s = p + w (s - p)` with `w = m (1 - min(1, |p - s| / delta))`;
 * noise around a steady value is averaged away, a person arriving, leaving or moving is taken at once.
 */
export class ConfidenceGatedSmoother {
  constructor(momentum, delta) {
    if (!(momentum >= 0 && momentum < 1)) throw new Error(`smoothing momentum must be in [0, 1), got ${momentum}`);
    if (!(delta > 0 && delta <= 1)) throw new Error(`delta must be in (0, 1], got ${delta}`);
    this.momentum = momentum;
    this.delta = delta;
    this.state = null;
  }

  reset() {
    this.state = null;
  }

  apply(prob) {
    if (this.momentum === 0 || this.state === null || this.state.length !== prob.length) {
      this.state = Float32Array.from(prob);
    } else {
      const m = Math.fround(this.momentum);
      const inv = Math.fround(1 / this.delta);
      const s = this.state;
      for (let i = 0; i < s.length; i++) {
        const trust = Math.min(Math.max(1 - Math.abs(prob[i] - s[i]) * inv, 0), 1);
        s[i] = prob[i] + Math.fround(trust * m) * (s[i] - prob[i]);
      }
    }
    return Float32Array.from(this.state);
  }
}

/** Person mask (0/1 bytes): probability >= threshold, both as float32 (as NumPy compares a float32 map). */
export function mask(prob, threshold) {
  const t = Math.fround(threshold);
  const out = new Uint8Array(prob.length);
  for (let i = 0; i < prob.length; i++) out[i] = prob[i] >= t ? 1 : 0;
  return out;
}
