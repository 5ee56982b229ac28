#!/usr/bin/env bash
# Every timing of benchmarks/runtimes/ in one run, from the repository root, on an otherwise idle machine (pause any
# training first: benchmarks/paused.sh PID benchmarks/runtimes/measure.sh): the whole predict of both bundled models on `runtime="auto"` and on each runtime but PyTorch,
# beside MediaPipe landscape and general through their own pipeline, at 1 and 2 threads; the steps of the fast
# model's predict; the 720p pipeline on 2 threads. Needs the dev install (the train, bench and openvino extras) and
# ../shared/data.
#
#     benchmarks/runtimes/measure.sh [OUTPUT_DIR]    # default benchmarks/runtimes
set -euo pipefail
out=${1:-benchmarks/runtimes}
image=../shared/data/davis_person/lucia/images/lucia_00000.jpg
mkdir -p "$out"
echo "CPU flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni|avx512_bf16|amx_tile' /proc/cpuinfo | sort -u | tr '\n' ' ')"
uptime
specs=()
for model in asbunet_person asbunet_person_fast; do
    specs+=("$model" "$model:onnx-int8" "$model:onnx" "$model:openvino-int8" "$model:openvino" "$model:openvino-bf16")
done
asbunet bench predict --image "$image" --threads 1 --runs 100 --warmup 10 --output "$out" \
    --model "${specs[@]}" mediapipe_general mediapipe_landscape
# 2 threads: the defaults only, in a process of their own (idle thread pools of other runtimes slow the next call)
asbunet bench predict --image "$image" --threads 2 --runs 100 --warmup 10 --output "$out/threads2" \
    --model asbunet_person asbunet_person_fast mediapipe_general mediapipe_landscape
python benchmarks/runtimes/overhead.py --image "$image" --threads 1 --runs 150 --warmup 15 --output "$out" \
    --model asbunet_person_fast asbunet_person_fast:onnx-int8 asbunet_person_fast:openvino-int8 asbunet_person
asbunet bench video --frames ../shared/data/davis_person/lucia/images --clip-frames 90 --runs 2 --threads 2 \
    --model asbunet_person_fast asbunet_person_fast:onnx-int8 asbunet_person mediapipe_landscape \
    --output out/runtimes_video
cp out/runtimes_video/pipeline.md out/runtimes_video/pipeline.json "$out/"
uptime
