"""Loading and running a model: preprocessing, runners, the one loader (`weights.load_model`), `Segmenter`."""
