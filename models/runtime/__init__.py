"""Running the models the way the edge does: 5-point face alignment and the ONNX
face-classifier runtime. Imported by ``edge_agent`` and by the training and evaluation code
alike; imports nothing of ``edge_agent``."""
