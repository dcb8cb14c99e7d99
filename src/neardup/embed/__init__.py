"""Global CNN embeddings (ONNX Runtime) and k-NN candidates; heavy imports are lazy."""

from .knn import KnnParams, embedding_pairs
from .model import Embedder, ModelSpec, default_model_spec

__all__ = ["Embedder", "KnnParams", "ModelSpec", "default_model_spec", "embedding_pairs"]
