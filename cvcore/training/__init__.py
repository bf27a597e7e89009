"""Training: the loop, its options, the data path on the device, processes, progress."""
