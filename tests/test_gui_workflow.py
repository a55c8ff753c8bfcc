"""The annotator workflow in a real viewer (Xvfb): propose, review, save, restore, fine-tune."""

import json

import numpy as np
import pytest

from napari_yolosam import layer_names

pytestmark = pytest.mark.gui


@pytest.fixture
def workflow(make_napari_viewer, phantom_folder, monkeypatch, tmp_path):
    from napari_yolosam.widgets.workflow import Workflow

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer()
    viewer.open(str(phantom_folder), plugin="napari-yolosam")
    flow = Workflow(viewer)
    from napari_yolosam.defaults import default_segmenter

    # the widgets offer the pretrained default; these tests use the small tiny for speed
    assert flow.proposals.segmenter_spec.value == default_segmenter()
    assert flow.finetune.segmenter.value == "in use"  # fine-tuning starts from the model in use
    from napari_yolosam.training.sam import SamTrainConfig

    config = SamTrainConfig()  # the widget's defaults are the core's
    assert (flow.finetune.lr.value, flow.finetune.epochs.value) == (config.lr, config.epochs)
    assert flow.finetune.targets.value == config.targets
    assert flow.finetune.heart_steps.value == config.heart_steps
    flow.proposals.segmenter_spec.value = "tiny"
    assert flow.finetune.starting_models() == ("yolo11n.yaml", "tiny")
    return viewer, flow


def audited(qtbot, review, restore: bool = True):
    """Run the audit (a worker) and wait for its queue; the session."""
    worker = review.run_audit(restore=restore)
    assert worker is not None, review.status.value
    assert review.session is None and "auditing" in review.status.value
    # the proposals kept with the review, or (other models) proposed first, then the audit
    qtbot.waitUntil(
        lambda: review.session is not None and review.audit_worker is None, timeout=120000
    )
    return review.session


def saved(qtbot, review, out):
    """Save the cleaned set (a worker) and wait; the files written."""
    assert review.save(out) is not None, review.status.value
    qtbot.waitUntil(lambda: review.save_worker is None, timeout=60000)
    return review.saved


def confirmed(review, action: str = "accept"):
    """An action on a proposal the widget asks about (the tests' tiny has random weights):
    the first press only asks, the second decides."""
    assert review.act(action) is None and "untrained model" in review.status.value
    return review.act(action)


def _selected_slice(review):
    rows = review.table.selectionModel().selectedRows()
    return int(review.table.item(rows[0].row(), 0).data(0)) if rows else None


def _ticks(qtbot):
    """A 10 ms timer on the GUI thread: its count shows the event loop kept running."""
    from qtpy.QtCore import QTimer

    count = {"n": 0}
    timer = QTimer()
    timer.timeout.connect(lambda: count.__setitem__("n", count["n"] + 1))
    timer.start(10)
    return timer, count


def test_propose_review_save_and_restore(
    workflow, qtbot, tmp_path, phantom_folder, make_napari_viewer
):
    viewer, flow = workflow
    timer, ticks = _ticks(qtbot)
    flow.proposals.detector_spec.value = "none"
    flow.proposals.segmenter_spec.value = "tiny"
    flow.proposals.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    timer.stop()
    assert ticks["n"] > 3, "the event loop kept running while proposing"
    assert viewer.layers["scar proposal"].data.shape == viewer.layers["labels"].data.shape

    session = audited(qtbot, flow.review)  # returned at once; the audit ran in a worker
    assert "weak models" in flow.review.status.value, "the CLI's warning, in the widget too"
    queue = session.queue()
    assert queue and flow.review.table.rowCount() == len(queue)
    assert flow.review.current == queue[0] and "disagreement" in viewer.layers
    assert _selected_slice(flow.review) == queue[0], "the highlighted row is the slice shown"
    colour = viewer.layers["disagreement"].get_color(1)
    from napari_yolosam.palette import LABEL_ONLY

    expected = [int(LABEL_ONLY[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    np.testing.assert_allclose(colour[:3], expected, atol=1e-3)  # as the legend says
    assert "label only" in flow.review.legend.value
    first = flow.review.current
    assert confirmed(flow.review).slice == first
    assert first not in session.queue()
    # shortcuts: the key bindings call the same actions
    from napari_yolosam.widgets.review import SHORTCUTS

    keys = {str(k).replace("+", "-"): func for k, func in viewer.keymap.items()}
    assert {key for _, _, key in SHORTCUTS} <= set(keys)
    if session.queue():
        second = flow.review.current
        keys["Alt-K"](viewer)
        assert second not in session.queue()
        keys["Alt-Z"](viewer)  # undo brings it back
        assert second in session.queue() and "keep undone" in flow.review.status.value
        assert _selected_slice(flow.review) == second
        labels = viewer.layers["labels"].data.copy()
        before = labels[second].copy()
        inside = tuple(np.argwhere(before == 2)[0])
        labels[second, :2, :2] = 3  # outside the myocardium: left out, as Accept does
        labels[(second, *inside)] = 3  # on healthy myocardium: kept
        viewer.layers["labels"].data = labels
        flow.review.current = second
        flow.review.act("edit")
        shown = viewer.layers["labels"].data[second]
        assert shown[inside] == 3 and (shown[:2, :2] == before[:2, :2]).all()
        assert "4 proposed px outside the myocardium left out" in flow.review.status.value
    assert saved(qtbot, flow.review, tmp_path / "cleaned")
    from napari_yolosam.widgets.finetune import CLEANED

    assert flow.finetune.source.value == CLEANED, "the Train tab offers what was just saved"
    assert flow.finetune.cleaned == tmp_path / "cleaned"
    from napari_yolosam.io import read_stack

    back = read_stack(phantom_folder, labels=tmp_path / "cleaned/masks")
    np.testing.assert_array_equal(back.labels, np.asarray(viewer.layers["labels"].data))
    log = [
        json.loads(line)
        for line in (tmp_path / "cleaned/decisions.jsonl").read_text().splitlines()
    ]
    assert log[0]["action"] == "accept" and log[0]["models"]["segmenter"] == "tiny"
    decided = len(session.decisions)

    # the widgets and the viewer are dropped mid-review; a new viewer restores the autosaved session
    labels_now = np.asarray(viewer.layers["labels"].data).copy()
    viewer.close()
    from napari_yolosam.widgets.workflow import Workflow

    viewer2 = make_napari_viewer()
    viewer2.open(str(phantom_folder), plugin="napari-yolosam")
    flow2 = Workflow(viewer2)
    flow2.proposals.detector_spec.value = "none"  # the same models: the review's proposals
    flow2.proposals.segmenter_spec.value = "tiny"  # are kept with it, not proposed again
    restored = audited(qtbot, flow2.review, restore=bool(flow2.review.restore.value))
    assert len(restored.decisions) == decided and "restored" in flow2.review.status.value
    assert "proposals kept with the review" in flow2.review.status.value
    np.testing.assert_array_equal(np.asarray(viewer2.layers["labels"].data), labels_now)
    np.testing.assert_array_equal(
        flow2.proposals.proposals.masks(), flow.proposals.proposals.masks()
    )
    assert flow2.proposals.cache.stats.encoded == 0 and "scar proposal" in viewer2.layers
    # other models: the kept proposals are not theirs, so they are proposed again first
    viewer3 = make_napari_viewer()
    viewer3.open(str(phantom_folder), plugin="napari-yolosam")
    flow3 = Workflow(viewer3)
    flow3.proposals.detector_spec.value = "none"
    flow3.proposals.segmenter_spec.value = "tiny_hr"
    flow3.review.run_audit()
    qtbot.waitUntil(lambda: "proposing all slices" in flow3.review.status.value, timeout=60000)
    qtbot.waitUntil(lambda: flow3.review.session is not None, timeout=120000)
    assert flow3.proposals.cache.stats.encoded > 0, "encoded (and proposed) again"
    assert "proposals kept" not in flow3.review.status.value


def test_interactive_box_prompt(workflow, qtbot):
    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.proposals.add_prompt_layers()
    viewer.dims.set_current_step(0, 2)
    viewer.layers["prompt box"].add_rectangles(
        np.array([[2, 30, 30], [2, 30, 90], [2, 90, 90], [2, 90, 30]])
    )
    qtbot.waitUntil(
        lambda: (
            flow.proposals.proposals is not None
            and flow.proposals.proposals.slices[2].sources == ["user"]
        ),
        timeout=30000,
    )
    viewer.layers["positive clicks"].add(np.array([[2, 60, 60]]))
    qtbot.waitUntil(lambda: "IoU" in flow.proposals.status.value, timeout=30000)
    assert flow.proposals.cache.stats.encoded == 1, "the slice was encoded once for both prompts"


def test_finetune_loads_models_and_rescores(workflow, qtbot, tmp_path):
    """Fine-tuning starts from the model in use; load + re-score keeps the review's earlier
    decisions (the saved summary counts them) and the widget says what the new model is."""
    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.proposals.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    assert "untrained" in flow.proposals.model_info.value
    session = audited(qtbot, flow.review, restore=False)
    accepted = confirmed(flow.review)
    assert accepted.before["label_area"] != accepted.after["label_area"], "a changed label"
    flow.finetune.what.value = "segmenter"
    flow.finetune.epochs.value = 1
    flow.finetune.targets.value = "extent"
    flow.finetune.heart_steps.value = 20
    flow.finetune.out.value = str(tmp_path / "run")
    timer, ticks = _ticks(qtbot)
    flow.finetune.start()
    qtbot.waitUntil(lambda: flow.finetune.result is not None, timeout=120000)
    timer.stop()
    assert ticks["n"] > 3, "the event loop kept running while training"
    assert flow.finetune.history and (tmp_path / "run/segmenter.pth").exists()
    from napari_yolosam.models.checkpoints import read_payload

    trained = read_payload(tmp_path / "run/segmenter.pth")["extra"]
    assert trained["config"]["targets"] == "extent", "the widget's choice reached training"
    assert trained["config"]["heart_steps"] == 20
    first_call = flow.finetune.result.history[0]
    assert first_call["model"] == "segmenter"
    flow.finetune.load_and_rescore()
    qtbot.waitUntil(lambda: "kept" in flow.review.status.value, timeout=60000)
    assert flow.proposals.segmenter_spec.value == str(tmp_path / "run/segmenter.pth")
    assert flow.review.session is session and len(session.decisions) == 1
    assert "fine-tuned on" in flow.proposals.model_info.value
    assert not flow.review.untrained
    assert saved(qtbot, flow.review, tmp_path / "cleaned")
    summary = json.loads((tmp_path / "cleaned/summary.json").read_text())
    assert summary["reviewed"] == 1 and summary["actions"]["accept"] == 1, summary
    assert summary["changed_slices"] == [accepted.image], summary


def test_finetune_cancel(workflow, qtbot, tmp_path):
    """Cancelled in the first epoch: nothing to load, no partial file. Cancelled after an
    epoch: that epoch's checkpoint loads. The progress bar follows the steps, never 100%
    while training goes on."""
    viewer, flow = workflow
    flow.finetune.what.value = "segmenter"
    flow.finetune.epochs.value = 50
    flow.finetune.out.value = str(tmp_path / "run")
    flow.finetune.start()
    flow.finetune.cancel()  # stops at the first event: before any epoch's checkpoint
    qtbot.waitUntil(lambda: "cancelled" in flow.finetune.status.value, timeout=180000)
    assert flow.finetune.result is None and "no model to load" in flow.finetune.status.value
    assert not list((tmp_path / "run").glob("*.part*")), "no partial file"
    flow.finetune.out.value = str(tmp_path / "run2")
    flow.finetune.start()
    qtbot.waitUntil(lambda: len(flow.finetune.history) >= 1, timeout=120000)
    progress = flow.finetune.progress
    assert 0 < progress.value < progress.max, "training's real progress"
    flow.finetune.cancel()
    qtbot.waitUntil(lambda: "cancelled" in flow.finetune.status.value, timeout=180000)
    assert flow.finetune.result is not None
    assert "kept the segmenter (1 finished epoch(s)" in flow.finetune.status.value
    assert flow.finetune.result.segmenter == tmp_path / "run2/segmenter.pth"
    flow.finetune.load_and_rescore()
    assert flow.proposals.segmenter_spec.value == str(tmp_path / "run2/segmenter.pth")
    qtbot.waitUntil(lambda: flow.proposals.proposals is not None, timeout=60000)
    from superqt.utils._qthreading import WorkerBase

    # the re-score it started (proposals, then the audit) ends before the viewer goes
    qtbot.waitUntil(lambda: not WorkerBase._worker_set, timeout=180000)


def test_missing_layers_are_reported(workflow):
    viewer, flow = workflow
    viewer.layers.remove("labels")
    assert flow.review.run_audit() is None
    assert "labels" in flow.review.status.value
    assert flow.proposals.propose() is None and "labels" in flow.proposals.status.value


def test_single_2d_slice(make_napari_viewer, phantom, qtbot, tmp_path, monkeypatch):
    from napari_yolosam.widgets.workflow import Workflow

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer()
    viewer.add_image(phantom.stack.images[0].copy(), name="LGE image")
    viewer.add_labels(
        phantom.stack.labels[0].copy(), name="labels"
    )  # edited in place, as napari paints
    flow = Workflow(viewer)
    flow.proposals.detector_spec.value = "none"
    flow.proposals.propose(current_only=True)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=30000)
    session = audited(qtbot, flow.review, restore=False)
    assert session is not None and len(session.stack) == 1
    flow.review.bias_shift.value = False
    assert audited(qtbot, flow.review, restore=False) is not None
    assert "not shifted: switched off" in flow.review.status.value
    flow.review.current = 0
    assert flow.review.act("accept") is not None, "pretrained LiteMedSAM: no question asked"
    assert np.asarray(viewer.layers["labels"].data).shape == phantom.stack.labels[0].shape


def test_audit_without_proposals_proposes_in_the_background(workflow, qtbot):
    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.review.run_audit()  # the review keeps no proposals for these models yet
    qtbot.waitUntil(lambda: "proposing all slices" in flow.review.status.value, timeout=60000)
    qtbot.waitUntil(lambda: flow.review.session is not None, timeout=60000)
    assert flow.review.table.rowCount() == len(flow.review.session.queue())


def test_confidence_is_validated_by_default(workflow, qtbot, monkeypatch):
    """The spin box's lowest value reads 'validated' and hands propose conf=None (the
    detector's own thresholds); any other value is one threshold for all classes."""
    import napari_yolosam.widgets.proposals as module

    viewer, flow = workflow
    widget = flow.proposals
    assert widget.conf.value == 0 and widget.conf.native.text() == "validated"
    seen = []
    real = module.propose
    monkeypatch.setattr(module, "propose", lambda *a, **k: seen.append(k["conf"]) or real(*a, **k))
    widget.detector_spec.value = "none"
    widget.segmenter_spec.value = "tiny"
    widget.propose(current_only=True)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    widget.conf.value = 0.3
    qtbot.waitUntil(lambda: widget.worker is None or not widget.worker.is_running, timeout=60000)
    widget.propose(current_only=True)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=60000)
    assert seen == [None, 0.3]
    qtbot.waitUntil(lambda: not widget.worker.is_running, timeout=60000)


def test_embed_stack_in_the_background_slice_in_view_first(workflow, qtbot):
    from napari_yolosam.widgets._stack_from_layers import stack_from_viewer

    viewer, flow = workflow
    widget = flow.proposals
    widget.detector_spec.value = "none"
    widget.look_closer.value = False  # the whole slices (the windows: the next test)
    stack = stack_from_viewer(viewer)
    n = len(stack)
    viewer.dims.set_current_step(0, 5)
    _, segmenter = widget.models()
    encode, order = segmenter.encode, []
    segmenter.encode = lambda image: (order.append(image), encode(image))[1]
    timer, ticks = _ticks(qtbot)
    widget.embed()
    qtbot.waitUntil(lambda: "embedded" in widget.status.value, timeout=60000)
    timer.stop()
    assert ticks["n"] > 3, "the event loop kept running while embedding"
    assert len(order) == n and np.array_equal(order[0], stack.images[5]), "slice in view first"
    assert np.array_equal(order[1], stack.images[6]), "then its neighbours"
    assert widget.cache.stats.encoded == n and f"{n} encoder pass(es) now" in widget.status.value
    assert len(list(widget.cache.disk_dir.glob("*/*.npy"))) == n, "kept on disk"
    widget.propose(current_only=True)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    assert widget.cache.stats.encoded == n, "proposals read the embeddings: no second pass"


def test_embed_and_propose_look_closer_at_the_heart(workflow, qtbot):
    """With 'look closer' ticked, Embed encodes each slice's window round the labelled heart
    (smaller than the slice) and proposing reads those windows: no second pass, and every
    layer stays in slice pixels."""
    viewer, flow = workflow
    widget = flow.proposals
    widget.detector_spec.value = "none"
    widget.look_closer.value = True
    widget.head_scar.value = False  # the checkbox reaches propose (recorded in its settings)
    _, segmenter = widget.models()
    encode, shapes = segmenter.encode, []
    segmenter.encode = lambda image: (shapes.append(image.shape), encode(image))[1]
    widget.embed()
    qtbot.waitUntil(lambda: "embedded" in widget.status.value, timeout=60000)
    image_shape = viewer.layers[layer_names.IMAGE].data.shape[1:]
    assert shapes and all(s[0] == s[1] and s[0] < max(image_shape) for s in shapes)
    encoded = widget.cache.stats.encoded
    widget.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: widget.worker is None or not widget.worker.is_running, timeout=60000)
    assert widget.cache.stats.encoded == encoded, "propose read the embedded windows"
    assert widget.proposals.settings["head_scar"] is False
    widget.head_scar.value = True
    assert viewer.layers["scar proposal"].data.shape == viewer.layers[layer_names.IMAGE].data.shape


def test_accept_takes_the_proposal_the_annotator_sees(workflow, qtbot):
    """After a box prompt (or a hand edit of the proposal layer), Accept writes what the
    proposal layer shows, not the proposal of audit time; the log names the source."""
    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.proposals.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    session = audited(qtbot, flow.review, restore=False)
    first, second = session.queue()[:2]
    flow.review.go_to(first)
    flow.proposals.add_prompt_layers()
    viewer.layers["prompt box"].add_rectangles(
        np.array([[first, 20, 20], [first, 20, 100], [first, 100, 100], [first, 100, 20]])
    )
    qtbot.waitUntil(
        lambda: flow.proposals.proposals.slices[first].sources == ["user"], timeout=30000
    )
    shown = np.asarray(viewer.layers["scar proposal"].data)[first] > 0
    assert not np.array_equal(shown, session.proposals[first]), "the prompt changed the proposal"
    confirmed(flow.review)
    decision = session.decisions[-1]
    assert decision.slice == first and decision.source == "user prompt"
    spec = session.stack.spec
    myocardium = spec.myocardium_mask(session.original[first])
    np.testing.assert_array_equal(spec.scar_mask(session.labels[first]), shown & myocardium)
    # a hand edit of the proposal layer: a square painted on the next slice
    flow.review.go_to(second)
    layer = viewer.layers["scar proposal"]
    data = np.asarray(layer.data).copy()
    data[second] = 0
    data[second, 40:70, 40:70] = 3
    layer.data = data
    confirmed(flow.review)
    decision = session.decisions[-1]
    assert decision.slice == second and decision.source == "hand edit of the proposal layer"
    painted = data[second] > 0
    myocardium = spec.myocardium_mask(session.original[second])
    np.testing.assert_array_equal(spec.scar_mask(session.labels[second]), painted & myocardium)


def test_proposing_one_slice_redraws_that_slice_only(workflow, qtbot):
    """After the whole stack is proposed, proposing the slice in view writes that slice of
    the existing layers in place (no whole-stack layers rebuilt per click)."""
    viewer, flow = workflow
    widget = flow.proposals
    widget.detector_spec.value = "none"
    widget.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    qtbot.waitUntil(lambda: not widget.worker.is_running, timeout=60000)
    layer = viewer.layers["scar proposal"]
    layer.data[3] = 0
    layer.data[5] = 7  # a marker on another slice: untouched if only slice 3 is redrawn
    viewer.dims.set_current_step(0, 3)
    widget.propose(current_only=True)
    qtbot.waitUntil(lambda: widget.status.value.startswith("proposed"), timeout=60000)
    assert viewer.layers["scar proposal"] is layer, "the same layer, updated in place"
    expected = widget.proposals.slices[3].mask.astype(np.uint8) * 3
    np.testing.assert_array_equal(layer.data[3], expected)
    assert (layer.data[5] == 7).all()


def test_audit_runs_with_progress_and_can_be_cancelled(workflow, qtbot):
    """The audit reports progress in the review tab and stops on Cancel; the queue shown
    before it stays, decisions on it included."""
    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.proposals.propose(current_only=False)
    qtbot.waitUntil(lambda: "scar proposal" in viewer.layers, timeout=60000)
    session = audited(qtbot, flow.review, restore=False)
    assert flow.review.progress.value == flow.review.progress.max == len(session.stack)
    flow.review.act("keep")
    assert flow.review.run_audit(restore=False) is not None
    flow.review.cancel_button.native.click()
    qtbot.waitUntil(lambda: flow.review.audit_worker is None, timeout=60000)
    assert "audit cancelled" in flow.review.status.value
    assert flow.review.session is session and len(session.decisions) == 1


def test_propagate_button_carries_the_labels_scar_to_the_neighbours(workflow, qtbot):
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.propagate import propagate
    from napari_yolosam.widgets._stack_from_layers import stack_from_viewer

    viewer, flow = workflow
    widget = flow.proposals
    widget.segmenter_spec.value = "lite_medsam"
    stack = stack_from_viewer(viewer)
    scar = stack.scar()
    start = next(i for i in range(1, len(stack)) if scar[i].any())
    viewer.dims.set_current_step(0, start)
    widget.propagate_direction.value = "both"
    timer, ticks = _ticks(qtbot)
    widget.propagate_button.changed.emit(True)  # what a click does
    qtbot.waitUntil(lambda: widget.status.value.startswith("propagated"), timeout=60000)
    timer.stop()
    assert ticks["n"] > 0  # the GUI kept running while SAM worked
    shown = np.asarray(viewer.layers["scar proposal"].data) > 0
    expected = drive(propagate(stack, widget.segmenter, start, scar[start])).masks()
    assert np.array_equal(shown, expected)
    assert np.array_equal(shown[start], scar[start])
    reached = [i for i, s in enumerate(widget.proposals.slices) if s.status == "ok"]
    assert start in reached and len(reached) >= 2
    assert f"{len(reached) - 1} slice(s) reached" in widget.status.value
    viewer.dims.set_current_step(0, 0)
    labels = viewer.layers["labels"]
    data = np.asarray(labels.data).copy()
    data[0][np.isin(data[0], (3, 4))] = 2  # no scar on slice 0: nothing to propagate
    labels.data = data
    widget.propagate()
    qtbot.waitUntil(lambda: "no scar in the labels" in widget.status.value, timeout=60000)


def test_closing_the_viewer_mid_work_is_clean(
    make_napari_viewer, phantom_folder, qtbot, tmp_path, monkeypatch
):
    """#31 point 7: closing stops every worker the widgets started and waits for it, so no
    worker signals into deleted widgets (which aborted the process once)."""
    from napari_yolosam.viewer import dock_workflow

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    viewer = make_napari_viewer(show=True)
    flow = dock_workflow(viewer, phantom_folder)
    flow.proposals.segmenter_spec.value = "tiny"
    flow.proposals.detector_spec.value = "none"
    flow.finetune.what.value = "segmenter"
    flow.finetune.epochs.value = 50
    flow.finetune.out.value = str(tmp_path / "run")
    flow.finetune.start()
    flow.proposals.embed()
    workers = [flow.finetune.worker, flow.proposals.embed_worker]
    qtbot.waitUntil(lambda: all(w.is_running for w in workers), timeout=30000)
    qtbot.waitUntil(lambda: flow.finetune.progress.value > 0, timeout=120000)  # mid-epoch
    # past the encoder's one-off export (not stoppable): each worker now stops within a step
    qtbot.waitUntil(lambda: flow.proposals.progress.value > 0, timeout=120000)
    viewer.close()
    assert not any(w.is_running for w in workers), "every worker stopped before the close ended"
    assert not list((tmp_path / "run").glob("*.part*")), "no half-written checkpoint"


def test_the_review_goes_to_the_heart_and_back(workflow, qtbot):
    """#30 point 4: a queued slice is shown centred and zoomed on its heart (the window its
    proposal used, else the label's heart); unticking shows the whole slice again."""
    from napari_yolosam.proposals.heart import heart_view

    viewer, flow = workflow
    flow.proposals.detector_spec.value = "none"
    flow.proposals.segmenter_spec.value = "tiny"
    viewer.reset_view()
    whole = viewer.camera.zoom
    session = audited(qtbot, flow.review)
    assert session.queue(), "something to review"
    flow.review.go_to(session.queue()[0])
    view = heart_view(flow.review.stack, flow.review.current)
    assert view.source == "label" and view.size < max(view.shape)
    assert viewer.camera.zoom > 1.3 * whole, "zoomed in on the heart"
    scale = viewer.layers["LGE image"].scale[-2:]
    y, x = viewer.camera.center[-2:]
    assert view.top * scale[0] <= y <= (view.top + view.size) * scale[0]
    assert view.left * scale[1] <= x <= (view.left + view.size) * scale[1]
    flow.review.to_heart.value = False
    assert viewer.camera.zoom == pytest.approx(whole, rel=0.05), "the whole slice again"
