"""The detector: an ultralytics YOLO model that boxes scar (and the LV), offline-safe."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import cache_dir
from ..view import View
from ._ultralytics import import_ultralytics, keep_torch_threads
from .checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_state_checked,
    read_payload,
    save_checkpoint,
    state_fingerprint,
)
from .preprocess import PreprocessConfig, to_uint8_rgb

SCAR_CLASS = "scar"
LV_CLASS = "lv"
#: Confidence threshold for classes without a validated one (ultralytics' default).
DEFAULT_CONF = 0.25
DETECTOR_CONFIGS = ("yolo11n.yaml", "yolo11s.yaml", "yolov8n.yaml", "yolov8s.yaml")


@dataclass
class Detections:
    """Boxes found on one slice: ``boxes`` (K, 4) ``x0 y0 x1 y1`` pixels, ``scores`` (K,), ``classes`` (K,)."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def of_class(self, index: int) -> Detections:
        """The detections of one class."""
        keep = self.classes == index
        return Detections(self.boxes[keep], self.scores[keep], self.classes[keep])

    def __len__(self) -> int:
        return len(self.boxes)


def _config_yaml(config: str, nc: int) -> Path:
    """A copy of an ultralytics model YAML with ``nc`` classes, in the project cache."""
    import yaml

    import_ultralytics()
    from ultralytics.nn.tasks import yaml_model_load

    try:
        cfg = yaml_model_load(config)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"unknown detector configuration {config!r} ({exc})") from exc
    cfg = {k: v for k, v in cfg.items() if k not in ("yaml_file", "scale")}
    cfg["nc"] = int(nc)
    target = cache_dir("ultralytics", "models", f"nc{nc}") / Path(config).name
    text = yaml.safe_dump(cfg, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


class Detector:
    """A YOLO detector with its class names, input size and preprocessing.

    Build with :meth:`build` (random weights from an ultralytics config such
    as ``yolo11n.yaml``), :meth:`load` (a project checkpoint; an ultralytics
    ``.pt`` only with ``trust=True``, since those files run code when
    unpickled) or :meth:`from_spec`.

    ``thresholds`` holds a confidence threshold per class name, chosen in
    training (best F1 on the validation cases) and kept in the checkpoint;
    :meth:`predict` uses them unless given one ``conf`` for all classes.
    ``looks_closer``: trained on windows round the heart (#27), so :meth:`detect_in` reads
    each slice through its window; kept in the checkpoint.
    """

    def __init__(
        self,
        yolo,
        config: str,
        names: list[str],
        imgsz: int,
        preprocess: PreprocessConfig,
        device: str = "cpu",
    ) -> None:
        self.yolo = yolo
        self.config = config
        self.names = list(names)
        self.imgsz = int(imgsz)
        self.preprocess = preprocess
        self.device = device
        self.yolo.model.names = dict(enumerate(self.names))
        self.thresholds: dict[str, float] = {}
        self.looks_closer = False
        self._fingerprint: str | None = None
        #: What the weights are, in words (shown by the GUI).
        self.origin = "untrained (random weights): it finds nothing until it is trained"

    @classmethod
    def build(
        cls,
        config: str = "yolo11n.yaml",
        names: tuple[str, ...] = (SCAR_CLASS,),
        imgsz: int = 256,
        device: str = "cpu",
        seed: int | None = 0,
    ) -> Detector:
        """A freshly initialised detector for ``names`` (one class per name)."""
        import torch

        import_ultralytics()
        from ultralytics import YOLO

        if seed is not None:
            torch.manual_seed(seed)
        yaml_path = _config_yaml(config, len(names))
        with keep_torch_threads():
            yolo = YOLO(str(yaml_path), task="detect")
        return cls(yolo, config, list(names), imgsz, PreprocessConfig(img_size=imgsz), device)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", trust: bool = False) -> Detector:
        """Load a project detector checkpoint (or, with ``trust``, an ultralytics ``.pt``)."""
        path = Path(path)
        try:
            payload = read_payload(path)
        except CheckpointError as exc:
            if not trust:
                raise CheckpointError(
                    path,
                    "is not a napari-yolosam detector checkpoint that loads safely; an ultralytics "
                    ".pt runs code when loaded: pass trust=True (--trust-detector) only for a file "
                    f"from a source you trust ({exc})",
                ) from exc
            return cls._load_ultralytics(path, device)
        if not isinstance(payload, dict) or payload.get("format") != "napari-yolosam":
            raise CheckpointError(path, "is not a napari-yolosam detector checkpoint")
        payload = load_checkpoint(path, "detector")
        config = payload["config"]
        try:
            detector = cls.build(
                config["model"], tuple(config["names"]), int(config["imgsz"]), device
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointError(path, f"has an invalid detector description ({exc})") from exc
        detector.preprocess = PreprocessConfig.from_dict(payload["preprocess"])
        thresholds = config.get("thresholds") or {}
        if not isinstance(thresholds, dict) or not all(
            isinstance(v, (int, float)) and 0 <= v <= 1 for v in thresholds.values()
        ):
            raise CheckpointError(path, "has invalid confidence thresholds")
        detector.thresholds = {
            str(k): float(v) for k, v in thresholds.items() if k in config["names"]
        }
        looks_closer = config.get("looks_closer", False)
        if not isinstance(looks_closer, bool):
            raise CheckpointError(path, f"has an invalid looks_closer ({looks_closer!r})")
        detector.looks_closer = looks_closer
        load_state_checked(detector.yolo.model, payload["state_dict"], path)
        detector._fingerprint = None
        seen = "; windows round the heart" if looks_closer else ""
        detector.origin = (
            f"detector checkpoint ({path.name}; classes {', '.join(detector.names)}{seen})"
        )
        return detector

    @classmethod
    def _load_ultralytics(cls, path: Path, device: str) -> Detector:
        import_ultralytics()
        from ultralytics import YOLO

        with keep_torch_threads():
            yolo = YOLO(str(path), task="detect")
        names = [yolo.model.names[i] for i in sorted(yolo.model.names)]
        imgsz = int(getattr(yolo.model, "args", {}).get("imgsz", 640))
        detector = cls(yolo, str(path), names, imgsz, PreprocessConfig(img_size=imgsz), device)
        detector.origin = f"ultralytics weights ({path.name}, trusted)"
        return detector

    @classmethod
    def from_spec(
        cls,
        spec: str | Path,
        names: tuple[str, ...] = (SCAR_CLASS,),
        imgsz: int = 256,
        device: str = "cpu",
        trust: bool = False,
    ) -> Detector:
        """A configuration name (fresh weights) or a checkpoint path."""
        text = str(spec)
        if text.endswith((".yaml", ".yml")) and not Path(text).exists():
            return cls.build(text, names, imgsz, device)
        if not Path(text).exists():
            raise CheckpointError(
                text,
                f"no such checkpoint, and not a configuration ({', '.join(DETECTOR_CONFIGS)})",
            )
        return cls.load(text, device, trust=trust)

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write a project checkpoint (loads with ``weights_only=True``)."""
        config = {
            "model": self.config,
            "names": self.names,
            "imgsz": self.imgsz,
            "thresholds": dict(self.thresholds),
            "looks_closer": bool(self.looks_closer),
        }
        return save_checkpoint(
            path,
            "detector",
            config,
            self.yolo.model.state_dict(),
            self.preprocess.to_dict(),
            extra,
        )

    @property
    def fingerprint(self) -> str:
        """Hash of configuration and weights."""
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(
                self.yolo.model.state_dict(),
                self.config,
                self.names,
                self.imgsz,
                *(["looks_closer"] if self.looks_closer else []),
            )
        return self._fingerprint

    def weights_changed(self) -> None:
        """Forget the cached fingerprint after training."""
        self._fingerprint = None

    def class_index(self, name: str) -> int | None:
        """Index of a class name, or ``None`` if the detector lacks it."""
        return self.names.index(name) if name in self.names else None

    def class_thresholds(self, conf: float | None = None) -> np.ndarray:
        """Confidence threshold per class index: ``conf`` for all, else :attr:`thresholds`
        (:data:`DEFAULT_CONF` for a class without one)."""
        if conf is not None:
            return np.full(len(self.names), float(conf), np.float32)
        return np.array(
            [self.thresholds.get(name, DEFAULT_CONF) for name in self.names], np.float32
        )

    def predict(
        self,
        images: list[np.ndarray],
        conf: float | None = None,
        iou: float = 0.5,
        max_det: int = 50,
        class_conf: dict[str, float] | None = None,
    ) -> list[Detections]:
        """Boxes on each 2D slice (several per slice; ``max_det`` only bounds runaway output).

        ``conf`` is one threshold for every class; ``None`` takes the per-class
        :attr:`thresholds` validated in training. ``class_conf`` sets some classes'
        thresholds by name instead (names the detector lacks are ignored).
        """
        per_class = self.class_thresholds(conf)
        for name, value in (class_conf or {}).items():
            if name in self.names:
                per_class[self.names.index(name)] = float(value)
        inputs = [to_uint8_rgb(image, self.preprocess) for image in images]
        with keep_torch_threads():
            results = self.yolo.predict(
                inputs,
                imgsz=self.imgsz,
                conf=float(per_class.min()),
                iou=iou,
                max_det=max_det,
                device=self.device,
                verbose=False,
            )
        out = []
        for result in results:
            boxes = result.boxes
            scores = boxes.conf.cpu().numpy().astype(np.float32)
            cls = boxes.cls.cpu().numpy().astype(int)
            keep = scores > per_class[np.clip(cls, 0, len(per_class) - 1)]  # as ultralytics
            out.append(
                Detections(
                    boxes.xyxy.cpu().numpy().astype(np.float32).reshape(-1, 4)[keep],
                    scores[keep],
                    cls[keep],
                )
            )
        return out

    def detect_in(
        self,
        image: np.ndarray,
        view: View,
        conf: float | None = None,
        iou: float = 0.5,
        class_conf: dict[str, float] | None = None,
    ) -> Detections:
        """The boxes on one slice, in slice pixels (clipped to it): read through ``view`` (the
        slice's window round the heart) where this detector :attr:`looks_closer`, else on
        the whole slice, as each was trained. Options as :meth:`predict`."""
        seen = view if self.looks_closer else View.whole(image.shape)
        found = self.predict([seen.crop(image)], conf=conf, iou=iou, class_conf=class_conf)[0]
        if seen.is_whole:
            return found
        h, w = image.shape
        boxes = np.clip(seen.to_slice(found.boxes), 0, [w, h, w, h]).astype(np.float32)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return Detections(boxes[keep], found.scores[keep], found.classes[keep])
