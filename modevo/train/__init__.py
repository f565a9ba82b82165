"""Training: the decoder model, its data over packed token windows, and the Lightning loop."""
