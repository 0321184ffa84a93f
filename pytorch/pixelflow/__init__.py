"""PixelFlow in PyTorch: the network, official checkpoints, ONNX conversion and the reference sampler.

This package is the numeric ground truth of PixelFlow Serve. Everything here follows
../shared/PIXELFLOW.md; the TypeScript sampler is tested against the golden vectors it writes.
"""

__version__ = "0.1.0"
