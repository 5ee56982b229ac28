// MediaPipe's selfie segmentation on the camera, with the same frame loop and `window.asbunet.stats` as app.js, so
// that web/bench.py measures both pages alike. URL parameter `model`: general (256x256) or landscape (144x256).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const MODELS = { general: 0, landscape: 1 };
const HISTORY = 600;

const stats = { frames: 0, fps: 0, networkMs: 0, frameMs: 0, history: [] };
const page = { stats, model: null, error: null };
window.asbunet = page;

const video = $("camera");
const output = $("output");
const ctx = output.getContext("2d");

function fail(err) {
  page.error = err instanceof Error ? err.message : String(err);
  $("status").textContent = page.error;
  $("status").classList.add("error");
}

function median(values) {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function showStats() {
  const now = performance.now();
  const recent = stats.history.filter((f) => now - f.end <= 2000);
  if (recent.length >= 2) {
    stats.fps = ((recent.length - 1) * 1000) / (recent[recent.length - 1].end - recent[0].end);
  }
  stats.networkMs = median(recent.map((f) => f.networkMs));
  stats.frameMs = median(recent.map((f) => f.frameMs));
  $("fps").textContent = recent.length >= 2 ? stats.fps.toFixed(1) : "-";
  $("network").textContent = recent.length ? `${stats.networkMs.toFixed(1)} ms` : "-";
}

const blurCanvas = document.createElement("canvas");
const blurCtx = blurCanvas.getContext("2d");

// The person over the blurred frame, alpha = MediaPipe's soft mask; the blur as app.js does it (sigma = long side
// / 40, on a copy downscaled so that it is 4 px there).
function render(results) {
  const { width, height } = output;
  const sigma = Math.max(width, height) / 40;
  const factor = Math.max(1, sigma / 4);
  blurCanvas.width = Math.max(1, Math.round(width / factor));
  blurCanvas.height = Math.max(1, Math.round(height / factor));
  blurCtx.drawImage(results.image, 0, 0, blurCanvas.width, blurCanvas.height);
  blurCtx.filter = `blur(${sigma / factor}px)`;
  blurCtx.drawImage(results.image, 0, 0, blurCanvas.width, blurCanvas.height);
  ctx.save();
  ctx.clearRect(0, 0, width, height);
  ctx.drawImage(results.segmentationMask, 0, 0, width, height);
  ctx.globalCompositeOperation = "source-in";
  ctx.drawImage(results.image, 0, 0, width, height);
  ctx.globalCompositeOperation = "destination-over";
  ctx.drawImage(blurCanvas, 0, 0, width, height);
  ctx.restore();
}

async function main() {
  const name = params.get("model") || "general";
  if (!(name in MODELS)) throw new Error(`model must be general or landscape, got ${name}`);
  const selfie = new window.SelfieSegmentation({ locateFile: (file) => `vendor/mediapipe/${file}` });
  selfie.setOptions({ modelSelection: MODELS[name], selfieMode: false });
  let done = null;
  let segmented = 0; // when the last results arrived
  selfie.onResults((results) => {
    segmented = performance.now();
    render(results);
    done();
  });
  await selfie.initialize();
  video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "user" }, audio: false });
  await video.play();
  page.model = `mediapipe-${name}`;
  $("model").textContent = `selfie segmentation, ${name}`;
  $("status").textContent = "Running.";
  setInterval(showStats, 500);
  const step = async () => {
    try {
      if (video.readyState >= 2 && video.videoWidth > 0) {
        const start = performance.now();
        output.width = video.videoWidth;
        output.height = video.videoHeight;
        $("camera-size").textContent = `${video.videoWidth}×${video.videoHeight}`;
        const finished = new Promise((resolve) => {
          done = resolve;
        });
        await selfie.send({ image: video });
        await finished;
        const end = performance.now();
        stats.frames += 1;
        stats.history.push({ end, networkMs: segmented - start, frameMs: end - start });
        if (stats.history.length > HISTORY) stats.history.shift();
      }
    } catch (err) {
      fail(err);
      return;
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

main().catch(fail);
