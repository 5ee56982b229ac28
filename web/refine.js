// The model's own refinement on the page, written to match `asbunet.inference.refine.GuidedRefine`
// (src/asbunet/inference/refine.py): the colour guided filter of He, Sun and Tang (TPAMI 2013, eqs. 14-16) fitted
// on the image as the network saw it, shrunk by `subsample` (the fast guided filter, He and Sun 2015), its linear
// maps from RGB to probability resized bilinearly to the frame's size and applied to the frame's own pixels, so that
// the probability follows the frame's edges. A model carries it in its ONNX metadata (`asbunet.refine`, e.g.
// `guided:radius=2,eps=0.0001,subsample=4`), which `web/serve.py` copies into models/models.json; a model without it
// is resized back bilinearly (`logitsToProbability` in segment.js).

import { areaTable, linearTable, roundHalfEven } from "./segment.js";

const TEXT = /^guided:radius=(\d+),eps=([0-9.eE+-]+),subsample=(\d+)$/;

/** `{ radius, eps, subsample }` from a model's stored refinement (`GuidedRefine.to_text`), or null for none. */
export function parseRefine(text) {
  if (text === null || text === undefined) return null;
  const found = TEXT.exec(String(text).trim());
  if (!found) throw new Error(`refine setting ${JSON.stringify(text)} is not of the form guided:radius=R,eps=E,subsample=S`);
  const refine = { radius: Number(found[1]), eps: Number(found[2]), subsample: Number(found[3]) };
  if (!(refine.radius >= 1 && refine.eps > 0 && refine.subsample >= 1)) throw new Error(`bad refine setting ${text}`);
  return refine;
}

/** Index `i` mirrored into [0, n) as OpenCV's BORDER_REFLECT does (`fedcba|abcdefgh|hgfedcb`). */
function reflect(i, n) {
  if (n === 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - i - 1;
  return i;
}

/** Mean over the (2r+1) x (2r+1) window around each pixel of an (h, w) map, mirrored at the border (`box_mean`). */
function boxMean(x, h, w, r) {
  const size = 2 * r + 1;
  const rows = new Float64Array(h * w);
  const line = new Float64Array(w + 2 * r + 1); // prefix sums of a mirrored row
  for (let y = 0; y < h; y++) {
    const base = y * w;
    line[0] = 0;
    for (let i = 0; i < w + 2 * r; i++) line[i + 1] = line[i] + x[base + reflect(i - r, w)];
    for (let i = 0; i < w; i++) rows[base + i] = line[i + size] - line[i];
  }
  const out = new Float32Array(h * w);
  const column = new Float64Array(h + 2 * r + 1);
  const scale = 1 / (size * size);
  for (let i = 0; i < w; i++) {
    column[0] = 0;
    for (let y = 0; y < h + 2 * r; y++) column[y + 1] = column[y] + rows[reflect(y - r, h) * w + i];
    for (let y = 0; y < h; y++) out[y * w + i] = (column[y + size] - column[y]) * scale;
  }
  return out;
}

/** An (h, w) float map resized to (th, tw): OpenCV's INTER_AREA when it shrinks, INTER_LINEAR when it grows. */
function resizeMap(map, h, w, th, tw) {
  if (h === th && w === tw) return map;
  const out = new Float32Array(th * tw);
  if (h < th) {
    const ly = linearTable(h, th);
    const lx = linearTable(w, tw);
    for (let y = 0; y < th; y++) {
      const a = ly.i0[y] * w;
      const b = ly.i1[y] * w;
      const fy = ly.w1[y];
      for (let x = 0; x < tw; x++) {
        const fx = lx.w1[x];
        const top = map[a + lx.i0[x]] * (1 - fx) + map[a + lx.i1[x]] * fx;
        const bottom = map[b + lx.i0[x]] * (1 - fx) + map[b + lx.i1[x]] * fx;
        out[y * tw + x] = top * (1 - fy) + bottom * fy;
      }
    }
    return out;
  }
  const ty = areaTable(h, th);
  const tx = areaTable(w, tw);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      let sum = 0;
      for (const [sy, wy] of ty[y]) for (const [sx, wx] of tx[x]) sum += map[sy * w + sx] * wy * wx;
      out[y * tw + x] = sum;
    }
  }
  return out;
}

/**
 * The three channels of an RGB uint8 (h, w, 3) image shrunk to (th, tw) by INTER_AREA, rounded to uint8 as OpenCV
 * rounds (halves up when it halves both sides, its SIMD path; to even otherwise), then / 255.
 */
function shrinkChannels(rgb, h, w, th, tw) {
  const ty = areaTable(h, th);
  const tx = areaTable(w, tw);
  const halves = h === 2 * th && w === 2 * tw;
  const channels = [0, 1, 2].map(() => new Float32Array(th * tw));
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (const [sy, wy] of ty[y]) for (const [sx, wx] of tx[x]) sum += rgb[(sy * w + sx) * 3 + c] * wy * wx;
        const rounded = halves ? Math.floor(sum + 0.5) : roundHalfEven(sum);
        const byte = h === th && w === tw ? sum : Math.min(255, Math.max(0, rounded));
        channels[c][y * tw + x] = Math.fround(byte / 255);
      }
    }
  }
  return channels;
}

/**
 * Per-pixel linear maps from RGB uint8 to probability, `p = a . rgb + b`, on the fitting grid (h / subsample,
 * w / subsample): `[a_r, a_g, a_b, b]`, each averaged over the windows covering a pixel (`GuidedRefine.coefficients`).
 */
export function coefficients(refine, small, h, w, probability, ph, pw) {
  const { radius: r, subsample } = refine;
  const eps = Math.fround(refine.eps);
  const fw = Math.max(1, Math.floor(w / subsample));
  const fh = Math.max(1, Math.floor(h / subsample));
  const channels = shrinkChannels(small, h, w, fh, fw);
  const p = resizeMap(probability, ph, pw, fh, fw);
  const n = fh * fw;
  const box = (x) => boxMean(x, fh, fw, r);
  const product = (u, v) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = u[i] * v[i];
    return out;
  };
  const means = channels.map(box);
  const meanP = box(p);
  const cov = channels.map((c, k) => {
    const out = box(product(c, p));
    for (let i = 0; i < n; i++) out[i] -= means[k][i] * meanP[i];
    return out;
  });
  const sigma = {};
  for (let i = 0; i < 3; i++) {
    for (let j = i; j < 3; j++) {
      const s = box(product(channels[i], channels[j]));
      for (let q = 0; q < n; q++) s[q] -= means[i][q] * means[j][q];
      sigma[`${i}${j}`] = s;
    }
  }
  const a = [0, 1, 2].map(() => new Float32Array(n));
  const b = new Float32Array(n);
  for (let q = 0; q < n; q++) {
    // Sigma + eps I, symmetric 3x3, inverted through its adjugate
    const s00 = sigma["00"][q] + eps;
    const s01 = sigma["01"][q];
    const s02 = sigma["02"][q];
    const s11 = sigma["11"][q] + eps;
    const s12 = sigma["12"][q];
    const s22 = sigma["22"][q] + eps;
    const i00 = s11 * s22 - s12 * s12;
    const i01 = s02 * s12 - s01 * s22;
    const i02 = s01 * s12 - s02 * s11;
    const i11 = s00 * s22 - s02 * s02;
    const i12 = s01 * s02 - s00 * s12;
    const i22 = s00 * s11 - s01 * s01;
    const invDet = 1 / (s00 * i00 + s01 * i01 + s02 * i02);
    const c0 = cov[0][q];
    const c1 = cov[1][q];
    const c2 = cov[2][q];
    a[0][q] = (i00 * c0 + i01 * c1 + i02 * c2) * invDet;
    a[1][q] = (i01 * c0 + i11 * c1 + i12 * c2) * invDet;
    a[2][q] = (i02 * c0 + i12 * c1 + i22 * c2) * invDet;
    b[q] = meanP[q] - a[0][q] * means[0][q] - a[1][q] * means[1][q] - a[2][q] * means[2][q];
  }
  const planes = a.map((x) => box(x));
  for (const plane of planes) for (let q = 0; q < n; q++) plane[q] /= 255; // applied to uint8 values
  return { planes: [...planes, box(b)], fh, fw };
}

/**
 * Person probability (height, width) float32 in [0, 1] of the frame (RGBA pixels), from the network's logits
 * (ph, pw) on `small`, the RGB uint8 (h, w, 3) image the network saw: the model's refinement
 * (`GuidedRefine.__call__`).
 */
export function guidedRefine(refine, rgba, height, width, small, h, w, logits, ph, pw) {
  const probability = new Float32Array(ph * pw);
  for (let i = 0; i < probability.length; i++) {
    const v = logits[i] < -30 ? -30 : logits[i] > 30 ? 30 : logits[i];
    probability[i] = 1 / (1 + Math.exp(-v));
  }
  const { planes, fh, fw } = coefficients(refine, small, h, w, probability, ph, pw);
  const lx = linearTable(fw, width);
  const ly = linearTable(fh, height);
  // the four planes resized along x first (fh, width), then each output row interpolated between two of them
  const rows = planes.map((plane) => {
    const out = new Float32Array(fh * width);
    for (let y = 0; y < fh; y++) {
      const base = y * fw;
      for (let x = 0; x < width; x++) {
        const fx = lx.w1[x];
        out[y * width + x] = plane[base + lx.i0[x]] * (1 - fx) + plane[base + lx.i1[x]] * fx;
      }
    }
    return out;
  });
  const [ar, ag, ab, bb] = rows;
  const out = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    const t = ly.i0[y] * width;
    const u = ly.i1[y] * width;
    const fy = ly.w1[y];
    const gy = 1 - fy;
    for (let x = 0, p = y * width * 4; x < width; x++, p += 4) {
      const i = t + x;
      const j = u + x;
      const v =
        bb[i] * gy +
        bb[j] * fy +
        (ar[i] * gy + ar[j] * fy) * rgba[p] +
        (ag[i] * gy + ag[j] * fy) * rgba[p + 1] +
        (ab[i] * gy + ab[j] * fy) * rgba[p + 2];
      out[y * width + x] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
  }
  return out;
}
