"""Compression and export of bundles: pruning, quantization, distillation, ONNX export and the accuracy
gate that picks the smallest / fastest candidate within a metric budget (``honing compress``)."""
