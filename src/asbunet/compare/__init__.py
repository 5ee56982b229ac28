"""The paper's comparison (Section IV-D, Fig. 6 and 7): ASBU-Net and its six baselines trained and scored alike.

`run_comparison` trains every model of a comparison config with one shared recipe (the `train:` mapping, a
`TrainConfig` without model, seed and output), evaluates each checkpoint on the test set with the paper's metric
(ignore-band IoU, Eq. 3) and plain IoU (`asbunet.evaluate.evaluate_model`), measures the latency of every model in
one run on this machine (`asbunet.bench.run`), and writes the results in the layout of Fig. 6 (accuracy, computation
time) and Fig. 7 (parameters, model size) with the paper's figures beside ours:

    <output>/<model>/seed<k>/             the training run (`asbunet train` files: last.pt, best.pt, metrics.csv...)
    <output>/<model>/seed<k>/eval/        `asbunet evaluate` files of its checkpoint on the test set
    <output>/<model>/seed<k>/result.json  completion marker: the recipe and the test scores of that run
    <output>/latency.json                 latency of every model, with the settings and the machine
    <output>/results.md                   the tables of Fig. 6 and 7, ours beside the paper's, and the paper's claims
    <output>/results.csv, results.json    the same figures, one row per model
    <output>/accuracy_latency.png         accuracy against latency, ours and the paper's

Resuming: a finished (model, seed) run, one with a `result.json` of the same recipe, is skipped; an interrupted one
continues after its last completed epoch (`train(..., resume=True)`) when `resume` is set. Several seeds give the
spread of each model's accuracy (mean and sample standard deviation over seeds).
"""
