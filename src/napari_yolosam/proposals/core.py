"""Proposals for a stack: YOLO boxes (and the label's scar regions) as SAM prompts.

:func:`propose` is a generator: it yields :class:`~napari_yolosam.progress.Progress`
after each slice and returns :class:`Proposals`. Every prompt records its
source: ``detector`` (a YOLO box), ``label`` (a scar region of the label being
cleaned, boxed as in training), ``neighbour`` (a detector box carried from the
previous slice) or ``user``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..defaults import EXTENT, HEAD_SCAR, LOOK_CLOSER, LV_CONF
from ..geometry import mask_box
from ..models.detector import LV_CLASS, SCAR_CLASS, Detections, Detector
from ..models.embeddings import EmbeddingCache
from ..models.heart import HeartReading
from ..models.segmenter import PromptOutput, Segmenter
from ..progress import Progress
from ..stack import Stack
from ..view import View
from .heart import finder_boxes, stack_views
from .types import INTENSITY_N, Proposals, SliceProposal, _pad, label_boxes


def segment_slice(
    segmenter: Segmenter,
    embedding,
    shape: tuple[int, int],
    prompts: list[tuple[np.ndarray, float, str]],
    lv_box: np.ndarray | None = None,
    restrict_to_myocardium: bool = True,
    myocardium: np.ndarray | None = None,
    view: View | None = None,
) -> tuple[PromptOutput, np.ndarray | None]:
    """SAM masks for scar prompts ``(box, score, source)`` and the myocardium from an LV box.

    Scar is kept inside ``myocardium`` (dilated by 2 px) when given, else inside
    the myocardium SAM proposes from ``lv_box``; the second is returned. ``view``: the
    window ``embedding`` was made from (slice pixels in and out).
    """
    boxes = np.array([p[0] for p in prompts], np.float32).reshape(-1, 4)
    output = segmenter.decode(embedding, shape, boxes=boxes, target="scar", view=view)
    proposed = model_myocardium(segmenter, embedding, shape, lv_box, view)
    allowed = proposed if myocardium is None else myocardium
    if restrict_to_myocardium and allowed is not None:
        output = inside_myocardium(output, allowed)
    return output, proposed


def inside_myocardium(output: PromptOutput, myocardium: np.ndarray) -> PromptOutput:
    """SAM's masks kept inside ``myocardium`` dilated by 2 px (unchanged without one)."""
    if not myocardium.any() or not len(output.masks):
        return output
    allowed = ndi.binary_dilation(myocardium, iterations=2)
    return PromptOutput(
        output.masks & allowed, np.where(allowed, output.logits, -20.0), output.iou
    )


def model_myocardium(
    segmenter: Segmenter,
    embedding,
    shape: tuple[int, int],
    lv_box: np.ndarray | None,
    view: View | None = None,
) -> np.ndarray | None:
    """The myocardium SAM segments from the detector's LV box (``None`` without one)."""
    if lv_box is None:
        return None
    output = segmenter.decode(embedding, shape, boxes=lv_box[None], target="myocardium", view=view)
    return output.masks[0]


def intensity_boxes(
    image: np.ndarray, myocardium: np.ndarray, blood_pool: np.ndarray | None = None
) -> np.ndarray:
    """Boxes round the enhanced regions of the myocardium: candidates for SAM, not scar.

    Enhanced = brighter than mean + :data:`INTENSITY_N` SD of the remote
    myocardium (:func:`~napari_yolosam.semiauto.nsd`, remote chosen
    automatically), boxed as labels are (:func:`label_boxes`). The threshold is
    the most sensitive of the usual n-SD ones: it proposes where to look, and
    the scar inside each box is SAM's. Independent of the label's scar.
    """
    from ..semiauto import nsd

    if not myocardium.any():
        return np.zeros((0, 4), np.float32)
    return label_boxes(nsd(image, myocardium, INTENSITY_N, blood_pool=blood_pool).mask)


def enhanced_extent(
    output: PromptOutput,
    image: np.ndarray,
    myocardium: np.ndarray,
    blood_pool: np.ndarray | None = None,
) -> PromptOutput:
    """SAM says where the scar is, the image says how far it reaches: each prompt's mask
    becomes the enhanced regions of the myocardium (brighter than mean +
    :data:`INTENSITY_N` SD of the remote myocardium) that it touches. Scar SAM drew on
    tissue that is not enhanced is dropped; enhanced tissue joined to its scar is added; no
    scar appears where SAM saw none. Logits are moved across 0 to match the masks."""
    from ..semiauto import nsd, touched_regions

    if not len(output.masks) or not myocardium.any():
        return output
    enhanced = nsd(image, myocardium, INTENSITY_N, blood_pool=blood_pool).mask
    masks = touched_regions(output.masks, enhanced)
    logits = np.where(masks, np.maximum(output.logits, 0.0), np.minimum(output.logits, -1e-3))
    return PromptOutput(masks, logits.astype(np.float32), output.iou)


@dataclass
class Anatomy:
    """The label's anatomy of a stack (``None`` where the labels carry none)."""

    myocardium: np.ndarray | None = None
    blood_pool: np.ndarray | None = None

    @classmethod
    def of(cls, stack: Stack, use: bool) -> Anatomy:
        if not (use and stack.has_labels and stack.spec.has_myocardium):
            return cls()
        labels = stack.labels
        return cls(stack.spec.myocardium_mask(labels), stack.spec.blood_pool_mask(labels))

    def at(self, stack: Stack, i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.myocardium is None or not self.myocardium[i].any():
            return None, None
        blood = None if self.blood_pool is None else stack.crop(i, self.blood_pool[i])
        return stack.crop(i, self.myocardium[i]), blood


def _detector_prompts(
    found: Detections,
    scar_index: int,
    lv_index: int | None,
    previous: Detections | None,
    options: dict,
) -> tuple[list, np.ndarray | None, str, Detections]:
    """Scar prompts, LV box and status from one slice's detections."""
    scar_found = found.of_class(scar_index if options["scar_boxes"] else -1)
    status = "ok" if len(scar_found) else "no_detection"
    prompts = [
        (b, float(s), "detector") for b, s in zip(scar_found.boxes, scar_found.scores, strict=True)
    ]
    if not len(scar_found) and options["carry_neighbour"] and previous is not None:
        prompts += [
            (b, float(s), "neighbour")
            for b, s in zip(previous.boxes, previous.scores, strict=True)
        ]
    lv_box = None
    if lv_index is not None:
        lv = found.of_class(lv_index)
        if len(lv):
            best = int(np.argmax(lv.scores))
            lv_box = lv.boxes[best]
            if options["lv_scar"]:
                prompts.append((lv_box, float(lv.scores[best]), "lv"))
    return prompts, lv_box, status, scar_found


def _propose_slice(
    image: np.ndarray,
    prompts: list,
    lv_box: np.ndarray | None,
    anatomy: tuple[np.ndarray | None, np.ndarray | None],
    segmenter: Segmenter,
    cache: EmbeddingCache,
    options: dict,
    view: View,
    read: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[PromptOutput, np.ndarray | None, list]:
    """SAM's scar for one slice, looking at ``view`` of it: the given prompts plus, with
    ``intensity``, enhanced regions. The myocardium is the label's, else the one the
    segmenter's anatomy head ``read`` in the window (with its blood pool), else SAM's from
    ``lv_box``."""
    shape = image.shape
    label_myo, blood = anatomy
    if not (prompts or lv_box is not None or (options["intensity"] and label_myo is not None)):
        empty = np.zeros((0, *shape), np.float32)
        return PromptOutput(empty.astype(bool), empty, np.zeros(0, np.float32)), None, prompts
    embedding = cache.get(segmenter, view.crop(image))
    if read is not None:
        proposed, read_blood = read
        blood = blood if label_myo is not None else read_blood
    else:
        proposed = model_myocardium(segmenter, embedding, shape, lv_box, view)
    myocardium = label_myo if label_myo is not None else proposed
    if options["intensity"] and myocardium is not None:
        prompts = prompts + [
            (b, float("nan"), "intensity") for b in intensity_boxes(image, myocardium, blood)
        ]
    output, _ = segment_slice(
        segmenter,
        embedding,
        shape,
        prompts,
        None,
        options["restrict_to_myocardium"],
        myocardium,
        view,
    )
    if options["extent"] and myocardium is not None:
        output = enhanced_extent(output, image, myocardium, blood)
    return output, proposed, prompts


def propose(
    stack: Stack,
    segmenter: Segmenter,
    detector: Detector | None = None,
    cache: EmbeddingCache | None = None,
    conf: float | None = None,
    iou: float = 0.5,
    use_labels: bool = True,
    carry_neighbour: bool = False,
    box_margin: int = 0,
    restrict_to_myocardium: bool = True,
    indices: list[int] | None = None,
    lv_scar: bool = False,
    scar_boxes: bool = True,
    intensity: bool = False,
    extent: bool = EXTENT,
    lv_conf: float | None = LV_CONF,
    look_closer: bool = LOOK_CLOSER,
    head_scar: bool = HEAD_SCAR,
) -> Generator[Progress, None, Proposals]:
    """Propose scar masks for the slices of ``stack`` (a generator: :class:`Progress` after
    each slice, ``stage="propose"``; close it to stop; returns :class:`Proposals`).

    Parameters
    ----------
    stack, segmenter, detector
        Images (and labels, for label prompts) and the models; without a
        detector only label (and ``intensity``) prompts are used.
    cache
        Embedding cache (a private memory-only one if ``None``).
    conf, iou
        Detector confidence and NMS IoU thresholds; every box above the
        threshold prompts SAM. ``conf=None``: the detector's per-class
        thresholds validated in training (0.25 for a class without one).
    use_labels
        Prompt with a box round each scar region of the label (as in
        training), and keep scar to the label's myocardium where it has one.
    carry_neighbour, box_margin
        Where the detector finds nothing, prompt with the previous slice's boxes; pixels
        added round label-region boxes (0: tight, as in training).
    restrict_to_myocardium, indices
        Keep scar inside the myocardium (the label's, else the proposed one); the slices to
        propose (default: all; the others get empty proposals).
    lv_scar, scar_boxes
        Prompt for scar with the detector's LV box too (segmenters trained
        with LV boxes) / with its scar boxes (``False`` with ``lv_scar``: scar
        from the anatomy alone).
    intensity, head_scar
        Prompt with a box round each enhanced region of the myocardium
        (:func:`intensity_boxes`, source ``intensity``); without labels, round each scar
        region the segmenter's anatomy head reads (``head``; ``defaults.HEAD_SCAR``).
    extent
        SAM locates the scar, the image sets its extent (:func:`enhanced_extent`; default
        :data:`~napari_yolosam.defaults.EXTENT`; where a myocardium is known).
    lv_conf
        Keep the detector's LV boxes above this score (the slice's best one is its
        anatomy): every short-axis slice crosses the LV (default
        :data:`~napari_yolosam.defaults.LV_CONF`). ``None``: the class's own threshold.
    look_closer
        SAM looks at a window round the heart (the label's anatomy, else the segmenter's
        heart finder); each proposal records it (default ``defaults.LOOK_CLOSER``).
    """
    cache = EmbeddingCache(max_bytes=256 << 20) if cache is None else cache
    options = {k: v for k, v in locals().items() if k in _OPTIONS}
    n = len(stack)
    indices = list(range(n)) if indices is None else [int(i) for i in indices]
    slices: list[SliceProposal | None] = [None] * n
    steps = _slice_steps(stack, segmenter, detector, cache, options, indices)
    for done, i in enumerate(indices, start=1):
        slices[i] = steps(i)
        yield Progress(
            done,
            len(indices),
            "propose",
            stack.names[i],
            {"prompts": len(slices[i].sources), "encoded": cache.stats.encoded},
        )
    full = stack.shape[1:]
    slices = [s if s is not None else SliceProposal.empty(full) for s in slices]
    return Proposals(list(stack.names), slices, _settings(segmenter, detector, options))


#: The settings of :func:`propose` that shape each proposal (saved with the proposals).
_OPTIONS = (
    "conf",
    "iou",
    "use_labels",
    "carry_neighbour",
    "box_margin",
    "restrict_to_myocardium",
    "lv_scar",
    "scar_boxes",
    "intensity",
    "extent",
    "lv_conf",
    "look_closer",
    "head_scar",
)


def _slice_steps(stack, segmenter, detector, cache, options, indices: list[int]):
    """The per-slice proposal as a function of the slice index (keeps the previous detections)."""
    full = stack.shape[1:]
    use_labels = options["use_labels"] and stack.has_labels
    scar_labels = stack.scar() if use_labels else None
    anatomy = Anatomy.of(stack, use_labels)
    scar_index = lv_index = None
    if detector is not None:
        scar_index = detector.class_index(SCAR_CLASS)
        scar_index = 0 if scar_index is None else scar_index
        lv_index = detector.class_index(LV_CLASS)
    state: dict = {"previous": None}
    heart_box = finder_boxes(stack, segmenter, cache)
    views = _views(stack, heart_box, options, indices)
    detect = _detections(stack, detector, options, views)

    def step(i: int) -> SliceProposal:
        image = stack.crop(i, stack.images[i])
        prompts, lv_box, status = [], None, "no_detector"
        if detector is not None:
            found = detect(i)
            prompts, lv_box, status, state["previous"] = _detector_prompts(
                found, scar_index, lv_index, state["previous"], options
            )
        view = views[i]
        read = None
        if anatomy.at(stack, i)[0] is None:  # always so without labels
            reading = read_window(segmenter, cache, image, view)
            read, box = anatomy_of(reading)
            box = box if box is not None or heart_box is None else heart_box(i)
            lv_box, prompts = _with_heart_box(box, lv_box, prompts, options)
            if scar_labels is None and options["head_scar"]:
                prompts += head_prompts(reading)
        if scar_labels is not None:
            own = stack.crop(i, scar_labels[i])
            prompts += [
                (b, float("nan"), "label") for b in label_boxes(own, options["box_margin"])
            ]
        output, myocardium, prompts = _propose_slice(
            image, prompts, lv_box, anatomy.at(stack, i), segmenter, cache, options, view, read
        )
        return _slice_proposal(output, prompts, status, myocardium, view, full)

    return step


def _slice_proposal(output: PromptOutput, prompts: list, status: str, myocardium, view, full):
    """One slice's :class:`SliceProposal` at the stack's padded shape ``full``."""
    return SliceProposal(
        mask=_pad(output.union, full),
        probability=_pad(output.probability, full),
        boxes=np.array([p[0] for p in prompts], np.float32).reshape(-1, 4),
        scores=np.array([p[1] for p in prompts], np.float32),
        iou=output.iou.astype(np.float32),
        sources=[p[2] for p in prompts],
        prompt_masks=_pad(output.masks, (len(prompts), *full)),
        status=status,
        myocardium=None if myocardium is None else _pad(myocardium, full),
        view=None if view.is_whole else view.to_dict(),
    )


def _detections(stack: Stack, detector: Detector | None, options: dict, views: list[View]):
    """The detector's detections of slice ``i`` in slice pixels as a function of ``i`` (each
    slice once), through the slice's window where the detector was trained on windows."""
    found: dict[int, Detections] = {}

    def detect(i: int) -> Detections:
        if i not in found:
            lv_conf = options["lv_conf"]
            found[i] = detector.detect_in(
                stack.crop(i, stack.images[i]),
                views[i],
                conf=options["conf"],
                iou=options["iou"],
                class_conf=None if lv_conf is None else {LV_CLASS: lv_conf},
            )
        return found[i]

    return detect


def read_window(
    segmenter: Segmenter, cache: EmbeddingCache, image: np.ndarray, view: View
) -> HeartReading | None:
    """What the segmenter's anatomy head reads inside ``view`` (a window round the heart: the
    head is trained on windows), in slice pixels; ``None`` without a head or on the whole
    slice. The window's embedding is the one SAM uses next (no extra encoder pass)."""
    if segmenter.anatomy is None or view.is_whole:
        return None
    embedding = cache.get(segmenter, view.crop(image))
    return segmenter.anatomy.read(embedding, view, segmenter.img_size)


def anatomy_of(
    reading: HeartReading | None,
) -> tuple[tuple[np.ndarray, np.ndarray] | None, np.ndarray | None]:
    """The myocardium and blood pool of a head's ``reading`` and the box round its LV;
    ``(None, None)`` without a reading or where it found no LV."""
    if reading is None or not reading.lv.any():
        return None, None
    return (reading.lv & ~reading.blood_pool, reading.blood_pool), mask_box(reading.lv)


def head_prompts(reading: HeartReading | None) -> list[tuple[np.ndarray, float, str]]:
    """A box round each scar region a head with a scar channel read (source ``head``, its
    score the channel's peak probability in the LV); none without such a reading."""
    if reading is None or reading.scar is None:
        return []
    return [(b, reading.scar_peak, "head") for b in label_boxes(reading.scar)]


def _with_heart_box(box, lv_box, prompts: list, options: dict) -> tuple:
    """The heart finder's LV box in place of the detector's (the LV box prompt for scar,
    with ``lv_scar``, too); the detector's where the finder found no heart."""
    if box is None:
        return lv_box, prompts
    prompts = [p for p in prompts if p[2] != "lv"]
    if options["lv_scar"]:
        prompts.append((box, float("nan"), "lv"))
    return box, prompts


def _views(stack, heart_box, options: dict, indices: list[int]) -> list[View]:
    """Each slice's window: the whole slice, or with ``look_closer`` the heart's
    (:func:`.heart.stack_views`: the label's anatomy, else the segmenter's heart finder,
    else a neighbour's window, else the whole slice). The detector's LV box places no
    window: trained from scratch on a CPU it cuts the heart on half the slices and its
    windows lowered the end-to-end scar (docs/benchmarks.md, ``find_heart.py``)."""
    if not options["look_closer"]:
        return [View.whole(stack.crop(i, stack.images[i]).shape) for i in range(len(stack))]
    use_labels = options["use_labels"] and stack.has_labels
    return stack_views(stack, heart_box, indices, use_labels, source="heart")


def _settings(segmenter: Segmenter, detector: Detector | None, options: dict) -> dict:
    """What made the proposals (saved with them)."""
    conf = options["conf"]
    if conf is None and detector is not None:  # the detector's own, per class
        conf = dict(zip(detector.names, detector.class_thresholds().tolist(), strict=True))
    return {
        "segmenter": segmenter.name,
        "segmenter_fingerprint": segmenter.fingerprint,
        "detector": None if detector is None else detector.config,
        "detector_fingerprint": None if detector is None else detector.fingerprint,
        "detector_looks_closer": None if detector is None else detector.looks_closer,
        **options,
        "conf": conf,
    }


def prompt_slice(
    segmenter: Segmenter,
    cache: EmbeddingCache,
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    target: str = "scar",
    view: View | None = None,
) -> PromptOutput:
    """Interactive prompting of one slice at decoder speed (the embedding comes from the cache).

    ``points`` ``(P, 2)`` ``x, y`` with ``point_labels`` (1 positive, 0 negative)
    go with the single box, or alone; with ``view`` SAM looks at that window of the slice
    (prompts and masks stay in slice pixels).
    """
    view = View.whole(image.shape) if view is None else view
    embedding = cache.get(segmenter, view.crop(image))
    if points is not None and len(points):
        points = np.asarray(points, np.float32).reshape(1, -1, 2)
        point_labels = None if point_labels is None else np.asarray(point_labels).reshape(1, -1)
        if boxes is not None and len(boxes) > 1:
            raise ValueError("points go with one box at a time")
    else:
        points = point_labels = None
    return segmenter.decode(
        embedding,
        image.shape,
        boxes=boxes,
        points=points,
        point_labels=point_labels,
        target=target,
        view=view,
    )
