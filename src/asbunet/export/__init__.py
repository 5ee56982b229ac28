"""Deployment (Abstract, Section III-D: a model that "can be easily implemented, quantized and deployed"; Section II-C:
8-bit quantization): ONNX export checked against PyTorch (`onnx`, `checks`), the graph rewrites for fast int8
(`rewrites`), int8 post-training quantization (`quantize`, `calibration`), TFLite (`tflite`) and the bundled model's
ONNX files (`bundled`). The runners that execute the files live in `asbunet.inference.runners`."""
