"""Training (Section IV-B): config, checkpoints, the loop, several processes."""
