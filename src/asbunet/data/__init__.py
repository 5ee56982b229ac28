"""Data side: reading images and masks, dataset layouts, augmentation (Section IV-A), batching."""
