"""MediaPipe Selfie Segmentation: the peer that `asbunet evaluate` and `asbunet bench` measure the models against.

Both models ship inside the `mediapipe==0.10.21` wheel (Apache-2.0): general (256x256) and landscape (144x256), input
RGB in [0, 1] at the model's fixed size, output the person probability. A copy of the two files with their licence
ships inside the package (`asbunet/peers/`) for evaluation, tests and benchmarks; `asbunet bench --fetch-peers`
extracts them from the wheel into any folder. `asbunet.inference.weights.load_model` runs them on the TFLite runner,
the whole image resized to their fixed size; `asbunet segment` never uses them.
"""

from __future__ import annotations

from pathlib import Path

from asbunet.inference.mediapipe_wheel import MEDIAPIPE_VERSION

# name -> path of the model inside the mediapipe wheel (the file keeps its name in a peers folder)
PEERS = {
    "mediapipe_general": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "mediapipe_landscape": "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
}
DEFAULT_PEERS_DIR = Path(__file__).resolve().parents[1] / "peers"  # the copy inside the package
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
            f"{name}: {path} not found in the peers folder {folder}; the package ships the MediaPipe models in "
            f"{DEFAULT_PEERS_DIR} (leave out --peers to use them), or extract them from the "
            f"mediapipe=={MEDIAPIPE_VERSION} wheel into DIR with `asbunet bench --fetch-peers --peers DIR`"
        )
    return path
