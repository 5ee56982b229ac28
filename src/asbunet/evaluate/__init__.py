"""Evaluating models on labelled data sets with the paper's metric (Section IV-C, Eq. 3) and the usual scores.

Every image is segmented by a `Segmenter` and compared with its label at the label's full resolution (see
`asbunet.metrics` for the definitions). Several models can be evaluated on the same images in one run: the first is
the reference, and each other model's row counts the images where the reference's IoU is higher by more than 0.01,
within 0.01, or lower (`asbunet.metrics.count_wins`). MediaPipe Selfie Segmentation runs as a model like the others
(`mediapipe_general`, `mediapipe_landscape`: `asbunet.inference.peers`). A `.txt` list of person-free frames (all-zero
labels) is scored by the share of pixels called person and the number of frames with more than 1% of them.

For each data set the results are printed as a table and written as:

    <output>/summary.json                 settings and every metric, mean over images and pooled over pixels: the
                                          first model under `model`, `settings`, `datasets`, every other one under
                                          `others`; `comparison`: per data set, one row per model
    <output>/results.md                   the same as Markdown tables
    <output>/<data set>/per_image.csv     one row per image: scores and the raw pixel counts behind them
    <output>/<data set>/gallery.png       the worst images: image | label | probability | errors (cf. Fig. 5)
    <output>/<data set>/<model>/          the same two files for each model after the first

Results are deterministic: images are processed in file order and a registry model without weights is initialized
from a fixed seed.
"""
