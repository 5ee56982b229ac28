"""The callables a benchmark times: one batch-1 pass of a model on PyTorch, onnxruntime or LiteRT."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from asbunet.inference.runners import OnnxRunner, TfliteRunner
from asbunet.models import create_model


def build_model(name: str) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return create_model(name).eval()


def torch_call(model: torch.nn.Module, size: tuple[int, int]) -> Callable[[], object]:
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, *size).contiguous(memory_format=torch.channels_last)

    def call():
        with torch.inference_mode():
            return model(x)

    return call


def ort_call(runner: OnnxRunner, size: tuple[int, int]) -> Callable[[], object]:
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    session, feed, out = runner.session, {runner.input_name: x}, [runner.output_name]
    return lambda: session.run(out, feed)


def peer_call(runner: TfliteRunner) -> Callable[[], object]:
    x = np.random.default_rng(0).random(runner.input["shape"]).astype(np.float32)  # RGB in [0, 1], NHWC
    return lambda: runner.invoke(x)
