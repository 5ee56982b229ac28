"""CPU latency benchmark of every model on every runtime, against the machine's matmul peaks and MediaPipe.

The paper compares accuracy, parameters, size and computation time (Fig. 6, 7); this measures the time part on the
machine at hand, with everything that makes such figures trustworthy printed beside them:

* runtimes: PyTorch eager fp32 (channels-last, inference mode), onnxruntime fp32 and onnxruntime int8
  (`asbunet.export.quantize.quantize_int8`, calibrated on a few real images);
* batch 1 at each input size and thread count; warm-up passes, then many timed passes taken round-robin over all
  models and runtimes of a size and thread count (a change of load hits them alike); median and 95th percentile;
* the machine (CPU, cores, versions) and its fp32 and int8 matmul peaks measured in the same run (onnxruntime
  MatMul and MatMulInteger, 2048 x 2048), so achieved GOP/s read as a fraction of what the cores can do; the int8
  *floor* of a model is 2 * MACs / int8 peak;
* peers: MediaPipe Selfie Segmentation general (256x256) and landscape (144x256), run with ai-edge-litert from the
  model files of the `mediapipe==0.10.21` wheel (`fetch_peers`); ratios to MediaPipe at the same input size;
* an onnxruntime per-operator profile of the int8 and fp32 ASBU-Net and an ablation of the int8 graph rewrites.

Outputs (`write_outputs`): `results.md` (tables like Fig. 6/7 plus the summary), `results.csv`, `results.json`,
`latency.png` (accuracy, or MACs, against latency) and `profile.md`.
"""
