// The webcam page: camera frames in, ASBU-Net on onnxruntime-web (WebAssembly, SIMD, threads when the page is
// cross-origin isolated), the person composited over a blurred, coloured or replaced background.
//
// URL parameters set the initial state: `model` (a file stem of models/models.json, e.g. asbunet_person.int8),
// `background` (blur, color, image, mask), `smooth` (0 turns temporal smoothing off), `threads` (WebAssembly threads).
// `window.asbunet` exposes the frame counters and the last frame with its mask, which tests/test_web.py and
// web/bench.py read.

import * as ort from "./vendor/ort/ort.wasm.min.mjs";
import { guidedRefine, parseRefine } from "./refine.js";
import { ConfidenceGatedSmoother, logitsToProbability, mask, networkSize, normalize, resizeRGB } from "./segment.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const HISTORY = 600; // frames kept in `stats.history`

const stats = { frames: 0, fps: 0, networkMs: 0, frameMs: 0, history: [] };
const page = {
  stats,
  model: null,
  threads: 1,
  error: null,
  snapshot,
  setModel: (id) => selectModel(id),
};
window.asbunet = page;

const video = $("camera");
const output = $("output");
const outCtx = output.getContext("2d");
const frameCanvas = document.createElement("canvas");
const frameCtx = frameCanvas.getContext("2d", { willReadFrequently: true });
const personCanvas = document.createElement("canvas");
const personCtx = personCanvas.getContext("2d");
const blurCanvas = document.createElement("canvas");
const blurCtx = blurCanvas.getContext("2d");
const backCanvas = document.createElement("canvas");
const backCtx = backCanvas.getContext("2d");

let manifest = null;
let entry = null; // the running model: { id, spec, session }
const sessions = new Map();
let smoother = null;
let last = null; // the last frame: { image, mask, width, height, model }
let backgroundImage = null;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function fail(err) {
  const text = err instanceof Error ? err.message : String(err);
  page.error = text;
  setStatus(text, true);
  console.error(err);
}

function median(values) {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function loadSession(spec) {
  if (!sessions.has(spec.id)) {
    const session = await ort.InferenceSession.create(`models/${spec.file}`, {
      executionProviders: ["wasm"],
      graphOptimizationLevel: "all",
    });
    sessions.set(spec.id, session);
  }
  return sessions.get(spec.id);
}

async function selectModel(id) {
  const spec = manifest.models.find((m) => m.id === id);
  if (!spec) throw new Error(`no model ${id}; available: ${manifest.models.map((m) => m.id).join(", ")}`);
  setStatus(`Loading ${spec.label}…`);
  const session = await loadSession(spec);
  entry = { id, spec, session };
  page.model = id;
  $("model").value = id;
  smoother.reset();
  stats.history = [];
  stats.frames = 0;
  setStatus(`Running ${spec.label}.`);
}

function background() {
  return document.querySelector('input[name="background"]:checked').value;
}

function resize(canvas, width, height) {
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
}

function defaultBackground(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  const gradient = ctx.createLinearGradient(0, 0, width, height);
  gradient.addColorStop(0, "#1f6f8b");
  gradient.addColorStop(1, "#99c24d");
  ctx.fillStyle = gradient;
  ctx.fillRect(0, 0, width, height);
  return canvas;
}

// The background of `asbunet.frames.effects.blur_background`: a Gaussian of sigma = long side / 40 on a copy
// downscaled so that the blur is 4 px there, with the person masked out before blurring (premultiplied alpha makes
// the canvas blur a normalized convolution), over the plainly blurred frame where the window holds little background.
function drawBlurredBackground(image, prob, width, height) {
  const sigma = Math.max(width, height) / 40;
  const factor = Math.max(1, sigma / 4);
  const sw = Math.max(1, Math.round(width / factor));
  const sh = Math.max(1, Math.round(height / factor));
  resize(blurCanvas, sw, sh);
  resize(backCanvas, width, height);
  const back = new ImageData(width, height);
  const src = image.data;
  const dst = back.data;
  for (let i = 0, p = 0; i < prob.length; i++, p += 4) {
    dst[p] = src[p];
    dst[p + 1] = src[p + 1];
    dst[p + 2] = src[p + 2];
    dst[p + 3] = Math.round((1 - prob[i]) * 255);
  }
  backCtx.putImageData(back, 0, 0);
  blurCtx.filter = "none";
  blurCtx.drawImage(frameCanvas, 0, 0, sw, sh);
  blurCtx.filter = `blur(${sigma / factor}px)`;
  blurCtx.drawImage(frameCanvas, 0, 0, sw, sh);
  blurCtx.drawImage(backCanvas, 0, 0, sw, sh);
  blurCtx.filter = "none";
  outCtx.drawImage(blurCanvas, 0, 0, width, height);
}

function drawCover(source, width, height) {
  const scale = Math.max(width / source.width, height / source.height);
  const w = source.width * scale;
  const h = source.height * scale;
  outCtx.drawImage(source, (width - w) / 2, (height - h) / 2, w, h);
}

// out = alpha * frame + (1 - alpha) * background, alpha = the person probability (`asbunet.frames.effects.composite`).
function render(image, prob, binary, width, height) {
  resize(output, width, height);
  const mode = background();
  if (mode === "mask") {
    const view = new ImageData(width, height);
    for (let i = 0, p = 0; i < binary.length; i++, p += 4) {
      const v = binary[i] ? 255 : 0;
      view.data[p] = v;
      view.data[p + 1] = v;
      view.data[p + 2] = v;
      view.data[p + 3] = 255;
    }
    outCtx.putImageData(view, 0, 0);
    return;
  }
  if (mode === "blur") {
    drawBlurredBackground(image, prob, width, height);
  } else if (mode === "color") {
    outCtx.fillStyle = $("color").value;
    outCtx.fillRect(0, 0, width, height);
  } else {
    if (!backgroundImage || (backgroundImage.generated && backgroundImage.width !== width)) {
      backgroundImage = defaultBackground(width, height);
      backgroundImage.generated = true;
    }
    drawCover(backgroundImage, width, height);
  }
  resize(personCanvas, width, height);
  const person = new ImageData(width, height);
  person.data.set(image.data);
  for (let i = 0, p = 3; i < prob.length; i++, p += 4) person.data[p] = Math.round(prob[i] * 255);
  personCtx.putImageData(person, 0, 0);
  outCtx.drawImage(personCanvas, 0, 0);
}

function record(start, networkMs, parts) {
  const end = performance.now();
  stats.frames += 1;
  stats.history.push({ end, networkMs, frameMs: end - start, ...parts });
  if (stats.history.length > HISTORY) stats.history.shift();
}

function showStats() {
  const now = performance.now();
  const recent = stats.history.filter((f) => now - f.end <= 2000);
  if (recent.length >= 2) {
    const span = recent[recent.length - 1].end - recent[0].end;
    stats.fps = span > 0 ? ((recent.length - 1) * 1000) / span : 0;
  } else {
    stats.fps = 0;
  }
  stats.networkMs = median(recent.map((f) => f.networkMs));
  stats.frameMs = median(recent.map((f) => f.frameMs));
  $("fps").textContent = recent.length >= 2 ? stats.fps.toFixed(1) : "-";
  $("network").textContent = recent.length ? `${stats.networkMs.toFixed(1)} ms` : "-";
  $("frame").textContent = recent.length ? `${stats.frameMs.toFixed(1)} ms` : "-";
}

async function step() {
  try {
    if (video.readyState >= 2 && video.videoWidth > 0 && entry) {
      const start = performance.now();
      const { id, spec, session } = entry;
      const width = video.videoWidth;
      const height = video.videoHeight;
      resize(frameCanvas, width, height);
      frameCtx.drawImage(video, 0, 0, width, height);
      const image = frameCtx.getImageData(0, 0, width, height);
      const [h, w] = networkSize(height, width, spec.input_size, manifest.size_multiple);
      const small = resizeRGB(image.data, height, width, h, w);
      const x = normalize(small, h, w, manifest.mean, manifest.std);
      const tensor = new ort.Tensor("float32", x, [1, 3, h, w]);
      const networkStart = performance.now();
      const result = await session.run({ [session.inputNames[0]]: tensor });
      const networkMs = performance.now() - networkStart;
      const output = result[session.outputNames[0]]; // (1, 1, h, w), or smaller from an `--head-stride` export
      const [oh, ow] = output.dims.slice(-2);
      const postStart = performance.now();
      const refine = parseRefine(spec.refine); // the model's own refinement, as `Segmenter.predict` applies it
      let prob = refine
        ? guidedRefine(refine, image.data, height, width, small, h, w, output.data, oh, ow)
        : logitsToProbability(output.data, oh, ow, height, width);
      if ($("smooth").checked) prob = smoother.apply(prob);
      else smoother.reset();
      const binary = mask(prob, spec.threshold);
      const renderStart = performance.now();
      render(image, prob, binary, width, height);
      const parts = {
        preMs: networkStart - start,
        postMs: renderStart - postStart,
        renderMs: performance.now() - renderStart,
      };
      last = { image, mask: binary, width, height, model: id, frame: stats.frames + 1 };
      $("camera-size").textContent = `${width}×${height}`;
      $("input-size").textContent = `${w}×${h}`;
      record(start, networkMs, parts);
    }
  } catch (err) {
    fail(err);
    return;
  }
  requestAnimationFrame(step);
}

function toBase64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

/** The last frame as the page saw it (RGB, base64) with the mask it computed (0/1 bytes, base64). */
function snapshot() {
  if (!last) return null;
  const { image, width, height } = last;
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0; i < width * height; i++, p += 4) {
    rgb[i * 3] = image.data[p];
    rgb[i * 3 + 1] = image.data[p + 1];
    rgb[i * 3 + 2] = image.data[p + 2];
  }
  return { width, height, model: last.model, frame: last.frame, rgb: toBase64(rgb), mask: toBase64(last.mask) };
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("No camera access here: open the page from localhost or over https (see `make web`).");
  }
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
  } catch (err) {
    throw new Error(`Camera not available (${err.name}: ${err.message}).`);
  }
  await video.play();
}

async function main() {
  const response = await fetch("models/models.json");
  if (!response.ok) throw new Error("models/models.json is missing: set the page up with `make web`.");
  manifest = await response.json();
  const hardware = navigator.hardwareConcurrency || 1;
  const threads = Number(params.get("threads")) || Math.min(4, hardware);
  page.threads = crossOriginIsolated ? threads : 1;
  ort.env.wasm.wasmPaths = new URL("vendor/ort/", location.href).href;
  ort.env.wasm.numThreads = page.threads;
  $("runtime").textContent =
    `onnxruntime-web ${manifest.onnxruntime_web}, WebAssembly SIMD, ` +
    `${page.threads} thread${page.threads > 1 ? "s" : ""}` +
    (crossOriginIsolated ? "" : " (not cross-origin isolated)");

  const select = $("model");
  for (const spec of manifest.models) select.add(new Option(spec.label, spec.id));
  select.addEventListener("change", () => selectModel(select.value).catch(fail));
  const { momentum, delta } = manifest.smoothing;
  $("momentum").textContent = `momentum ${momentum}, delta ${delta}`;
  smoother = new ConfidenceGatedSmoother(momentum, delta);
  if (params.get("smooth") === "0") $("smooth").checked = false;
  const mode = params.get("background");
  if (mode) document.querySelector(`input[name="background"][value="${mode}"]`).checked = true;
  $("image").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    backgroundImage = await createImageBitmap(file);
    document.querySelector('input[name="background"][value="image"]').checked = true;
  });
  $("color").addEventListener("input", () => {
    document.querySelector('input[name="background"][value="color"]').checked = true;
  });

  const wanted = params.get("model") || manifest.models.find((m) => m.default)?.id || manifest.models[0].id;
  await selectModel(wanted);
  setStatus("Waiting for the camera…");
  await startCamera();
  setStatus(`Running ${entry.spec.label}.`);
  setInterval(showStats, 500);
  requestAnimationFrame(step);
}

main().catch(fail);
