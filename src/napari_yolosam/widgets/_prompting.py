"""The Propose tab's hand prompts: a box and clicks drawn on the slice shown prompt SAM
(through the window the slice's proposal used), and the answer becomes its proposal."""

from __future__ import annotations

from .. import layer_names
from ..proposals.core import prompt_slice
from ..proposals.heart import heart_view
from ..proposals.prompts import slice_prompts, user_proposal, with_slice
from ._stack_from_layers import MissingLayer, layer_or_none, layers_of_viewer, stack_of_layers
from ._work import start

#: The prompt layers' names.
BOX_LAYER = "prompt box"
POSITIVE_LAYER = "positive clicks"
NEGATIVE_LAYER = "negative clicks"


class HandPrompts:
    """The proposals widget's hand prompts (a mixin: it reads the widget's viewer, models,
    cache, proposals, status and ``look closer`` checkbox)."""

    def add_prompt_layers(self) -> None:
        """Shapes and Points layers whose edits prompt SAM on the current slice."""
        image = layer_or_none(self.viewer, layer_names.IMAGE)
        if image is None:
            self.status.value = f"no '{layer_names.IMAGE}' layer: open a stack first"
            return
        ndim = image.ndim
        if BOX_LAYER not in self.viewer.layers:
            layer = self.viewer.add_shapes(
                name=BOX_LAYER,
                ndim=ndim,
                edge_color="yellow",
                face_color="transparent",
                scale=image.scale,
            )
            layer.events.data.connect(self._prompt_changed)
        for name, colour in ((POSITIVE_LAYER, "lime"), (NEGATIVE_LAYER, "red")):
            if name not in self.viewer.layers:
                layer = self.viewer.add_points(
                    name=name, ndim=ndim, face_color=colour, size=4, scale=image.scale
                )
                layer.events.data.connect(self._prompt_changed)

    def _prompt_changed(self, event=None) -> None:
        self.prompt_current_slice()

    def prompt_current_slice(self):
        """Run SAM on the prompts drawn on the current slice (worker); returns the worker."""
        try:
            shown = layers_of_viewer(self.viewer)
        except MissingLayer as exc:
            self.status.value = str(exc)
            return None
        index = self.current_slice()
        box, points, labels = self._prompts(index)
        if box is None and points is None:
            return None
        closer = bool(self.look_closer.value)
        kept = self.proposals_of(len(shown[0]))  # the slice's: SAM looks through its window
        own = None if kept is None else kept.slices[index]

        def work(_, segmenter):
            yield None
            stack = stack_of_layers(*shown)  # the copy is made here, not on the GUI thread
            image = stack.crop(index, stack.images[index])
            view = heart_view(stack, index, own) if closer else None
            output = prompt_slice(
                segmenter,
                self.cache,
                image,
                boxes=box,
                points=points,
                point_labels=labels,
                view=view,
            )
            return output, stack.names, view

        self.worker, self._stop = start(
            self._with_models(work),
            on_event=self._on_event,
            on_done=lambda out: self._apply_user(index, box, *out, shown[0].shape[1:]),
            on_error=self._fail,
            owner=self.native,
        )
        return self.worker

    def _prompts(self, index: int):
        """The box and clicks drawn on slice ``index`` (the prompt layers' data to the core)."""
        layers = self.viewer.layers
        shapes = list(layers[BOX_LAYER].data) if BOX_LAYER in layers else []
        clicks = [
            layers[name].data if name in layers else None
            for name in (POSITIVE_LAYER, NEGATIVE_LAYER)
        ]
        return slice_prompts(shapes, clicks[0], clicks[1], index)

    def _apply_user(self, index: int, box, output, names, view, shape) -> None:
        proposal = user_proposal(output, box, shape, view)
        if proposal is None:
            return
        kept = self.proposals_of(len(names))
        self.proposals = with_slice(kept, names, index, proposal)
        fresh = kept is None
        if fresh or not self.show_slices([index]):
            self.show()
        self.status.value = f"slice {index}: SAM mask from your prompt (IoU {output.iou[0]:.2f})"
