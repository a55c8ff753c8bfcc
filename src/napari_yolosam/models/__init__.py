"""The models and what serves them: the YOLO detector, the SAM segmenters, the embedding
cache, checkpoints, published weights and the one preprocessing.

Import the parts (``models.detector``, ``models.segmenter``, ``models.embeddings``); this
package itself loads nothing heavy.
"""
