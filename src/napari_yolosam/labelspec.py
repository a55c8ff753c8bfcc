"""Which label values mean what: :class:`LabelSpec` and its presets."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

MASK_MODES = ("auto", "binary", "multiclass")


def _as_values(values: Iterable[int] | str | None) -> tuple[int, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        values = [v for v in values.replace(" ", "").split(",") if v]
    return tuple(sorted({int(v) for v in values}))


@dataclass(frozen=True)
class LabelSpec:
    """Meaning of the values of a label map.

    Parameters
    ----------
    scar, myocardium, no_reflow, blood_pool
        Label values of each structure. A value may belong to several
        structures (EMIDEC: scar 3 and no-reflow 4 are both myocardium).
    mode
        How mask files are decoded. ``"binary"``: any value ``>= threshold``
        (soft, anti-aliased masks) becomes ``binary_value``. ``"multiclass"``:
        values are kept and must be known to the specification. ``"auto"``:
        a stack whose masks reach ``threshold`` (0/255 or soft masks) or whose
        only non-zero value is 1 is binary, anything else multiclass.
    threshold
        Binarisation threshold for soft masks (on the 0..255 scale).
    binary_value
        The value a binarised mask gets (a scar value).
    name
        Preset name, for reports.
    """

    scar: tuple[int, ...] = (3, 4)
    myocardium: tuple[int, ...] = (2, 3, 4)
    no_reflow: tuple[int, ...] = (4,)
    blood_pool: tuple[int, ...] = (1,)
    mode: str = "auto"
    threshold: int = 128
    binary_value: int = 1
    name: str = "emidec"
    extra: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        for attr in ("scar", "myocardium", "no_reflow", "blood_pool", "extra"):
            object.__setattr__(self, attr, _as_values(getattr(self, attr)))
        if self.mode not in MASK_MODES:
            raise ValueError(f"mask mode must be one of {MASK_MODES}, not {self.mode!r}")
        if not 1 <= int(self.threshold) <= 255:
            raise ValueError(f"threshold must lie in 1..255, not {self.threshold}")
        if 0 in self.scar or 0 in self.myocardium:
            raise ValueError("label value 0 is background and cannot be scar or myocardium")

    # -- presets -----------------------------------------------------------
    @classmethod
    def emidec(cls, **overrides) -> LabelSpec:
        """EMIDEC: 1 blood pool, 2 healthy myocardium, 3 scar, 4 no-reflow."""
        return replace(cls(), **overrides)

    @classmethod
    def binary(cls, **overrides) -> LabelSpec:
        """A scar-only mask (the YoloSAM sample): scar = 1 after binarisation."""
        base = cls(
            scar=(1,), myocardium=(), no_reflow=(), blood_pool=(), mode="binary", name="binary"
        )
        return replace(base, **overrides)

    @classmethod
    def from_name(cls, name: str, **overrides) -> LabelSpec:
        """A preset by name (``emidec``, ``binary``) with fields overridden."""
        presets = {"emidec": cls.emidec, "binary": cls.binary}
        if name not in presets:
            raise ValueError(f"unknown label specification {name!r}; known: {sorted(presets)}")
        return presets[name](**{k: v for k, v in overrides.items() if v is not None})

    # -- values ------------------------------------------------------------
    @property
    def known_values(self) -> tuple[int, ...]:
        """Every value a label map may hold (0 included)."""
        values = {0, *self.scar, *self.myocardium, *self.no_reflow, *self.blood_pool, *self.extra}
        if self.mode == "binary":
            values.add(self.binary_value)
        return tuple(sorted(values))

    def as_binary(self) -> LabelSpec:
        """This specification for masks decoded as binary scar."""
        return replace(
            self,
            mode="binary",
            scar=(self.binary_value,),
            myocardium=tuple(v for v in self.myocardium if v == self.binary_value),
            no_reflow=(),
            blood_pool=(),
            name=self.name if self.mode == "binary" else "binary",
        )

    # -- masks -------------------------------------------------------------
    @staticmethod
    def _isin(labels: np.ndarray, values: Sequence[int]) -> np.ndarray:
        if not values:
            return np.zeros(np.shape(labels), dtype=bool)
        labels = np.asarray(labels)
        if len(values) <= 8:  # a few comparisons: several times faster than np.isin
            out = labels == values[0]
            for value in values[1:]:
                out |= labels == value
            return out
        return np.isin(labels, values)

    def scar_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean scar mask (no-reflow included where the spec says so)."""
        return self._isin(labels, self.scar)

    def myocardium_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean myocardium mask (all-False when the spec has none)."""
        return self._isin(labels, self.myocardium)

    def no_reflow_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean no-reflow (microvascular obstruction) mask."""
        return self._isin(labels, self.no_reflow)

    def blood_pool_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean LV blood-pool mask."""
        return self._isin(labels, self.blood_pool)

    def lv_mask(self, labels: np.ndarray) -> np.ndarray:
        """Boolean left ventricle: its myocardium and blood pool (the region of an LV box)."""
        return self._isin(labels, (*self.myocardium, *self.blood_pool))

    @property
    def scar_value(self) -> int:
        """The value new scar pixels take."""
        return self.binary_value if self.mode == "binary" else self.scar[0]

    def replace_scar(
        self, labels: np.ndarray, scar: np.ndarray, allow_outside: bool = False
    ) -> tuple[np.ndarray, int]:
        """A copy of one slice's ``labels`` with the scar replaced by ``scar``, and the
        number of ``scar`` pixels outside the labelled myocardium.

        Only scar changes: pixels that leave the scar become healthy myocardium, new
        ones take :attr:`scar_value`; no-reflow stays, and so do blood pool, background
        and the myocardium's extent. Scar outside the myocardium is left out unless
        ``allow_outside``. Label sets without myocardium take ``scar`` as it is.
        """
        labels = np.array(labels, copy=True)
        scar = np.asarray(scar, bool)
        old = self.scar_mask(labels)
        if not self.has_myocardium:
            labels[old & ~scar] = 0
            labels[scar] = self.scar_value
            return labels, 0
        myocardium = self.myocardium_mask(labels)
        outside = int((scar & ~myocardium).sum())
        target = scar if allow_outside else scar & myocardium
        healthy = next((v for v in self.myocardium if v not in self.scar), 0)
        labels[old & ~target & ~self.no_reflow_mask(labels)] = healthy
        labels[target & ~old] = self.scar_value
        return labels, outside

    @property
    def has_myocardium(self) -> bool:
        """Whether label maps under this spec carry the myocardium."""
        return bool(self.myocardium)

    def to_dict(self) -> dict:
        """A JSON-friendly form (layer metadata, reports)."""
        return {
            "name": self.name,
            "scar": list(self.scar),
            "myocardium": list(self.myocardium),
            "no_reflow": list(self.no_reflow),
            "blood_pool": list(self.blood_pool),
            "mode": self.mode,
            "threshold": int(self.threshold),
            "binary_value": int(self.binary_value),
            "extra": list(self.extra),
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)
