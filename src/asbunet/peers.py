"""MediaPipe Selfie Segmentation: the peer that `asbunet evaluate` and `asbunet bench` measure the models against.

Both models ship inside the `mediapipe==0.10.21` wheel (Apache-2.0): general (256x256) and landscape (144x256), input
RGB in [0, 1] at the model's fixed size, output the person probability. A copy of the two files with their licence
is kept in the repository's `peers/mediapipe/` for evaluation, tests and benchmarks; `asbunet bench --fetch-peers`
extracts them from the wheel into any folder. They are never used by `asbunet segment` or
`Segmenter.from_pretrained`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from asbunet.inference import normalize, to_rgb
from asbunet.mediapipe_wheel import MEDIAPIPE_VERSION
from asbunet.predict import Segmenter

# name -> path of the model inside the mediapipe wheel (the file keeps its name in a peers folder)
PEERS = {
    "mediapipe_general": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "mediapipe_landscape": "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
}
DEFAULT_PEERS_DIR = Path("peers/mediapipe")  # relative to the working directory: the repository root
THRESHOLD = 0.5  # MediaPipe's own mask threshold


def peer_path(name: str, folder: str | Path = DEFAULT_PEERS_DIR) -> Path:
    """The `.tflite` file of peer `name` in `folder`.

    Raises:
        ValueError: `name` is not a peer (the message lists the peers).
        FileNotFoundError: the file is absent; the message says how to get it.
    """
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; peers: {', '.join(PEERS)}")
    path = Path(folder) / Path(PEERS[name]).name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name}: {path} not found in the peers folder {folder}; the repository keeps the MediaPipe models in "
            f"peers/mediapipe (run from the repository root or give --peers DIR), or extract them from the "
            f"mediapipe=={MEDIAPIPE_VERSION} wheel with `asbunet bench --fetch-peers --peers DIR`"
        )
    return path


class PeerSegmenter(Segmenter):
    """A `Segmenter` for a model with a fixed input size such as MediaPipe's: the whole image is resized to that size
    in one step, as MediaPipe feeds it (keeping the aspect ratio first and resizing a second time to the model's size
    costs MediaPipe general 0.006 IoU on davis_person/tennis)."""

    def logits(self, image: np.ndarray) -> np.ndarray:
        rgb = to_rgb(image)
        h, w = self.runner.size
        interp = cv2.INTER_AREA if rgb.shape[0] > h or rgb.shape[1] > w else cv2.INTER_LINEAR
        x = normalize(cv2.resize(rgb, (w, h), interpolation=interp))[None]  # (1, 3, h, w)
        return self.runner(x)[0, 0]

    def predict_batch(self, images) -> list[np.ndarray]:
        return [self.predict(image) for image in images]


def load_peer(name: str, folder: str | Path = DEFAULT_PEERS_DIR, threads: int | None = None) -> PeerSegmenter:
    """A `PeerSegmenter` running peer `name` with ai-edge-litert at the model's own size, threshold 0.5."""
    from asbunet.runtime import TfliteRunner

    path = peer_path(name, folder)
    try:
        runner = TfliteRunner(path, threads=threads, input_range="unit", output="probability")
    except ImportError:
        raise ValueError(
            f"{name}: running the MediaPipe models needs ai-edge-litert: pip install ai-edge-litert "
            "(or the package's dev or bench extra)"
        ) from None
    return PeerSegmenter(runner, runner.input_size, f"{name} ({path})", THRESHOLD)
