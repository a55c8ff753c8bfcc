"""DICOM Segmentation objects: written for a DICOM series, opened by pydicom, read back."""

import warnings

import numpy as np
import pydicom
import pytest

from _dicom import write_series
from napari_yolosam.io import StackError, read_stack, write_labels


def _emidec_like(n=4, h=24, w=30, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, h, w), np.uint8)
    labels[:, 4:20, 5:25] = 1
    labels[:, 7:17, 8:22] = 2
    for i in range(n):
        y, x = rng.integers(8, 14), rng.integers(9, 18)
        labels[i, y : y + 3, x : x + 4] = 3
        if i % 2:
            labels[i, y + 1, x + 1] = 4
    return labels


@pytest.fixture
def series(tmp_path):
    """A generated MR series of 4 slices (names shuffled against their order)."""
    volume = np.random.default_rng(1).random((4, 24, 30)) * 500
    write_series(tmp_path / "dicom", volume)
    return tmp_path / "dicom"


def _frames_by_slice(ds):
    """{(source SOP Instance UID, segment number): frame pixels} of a SEG dataset."""
    frames = {}
    for k, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        frames[(str(source.ReferencedSOPInstanceUID), int(number))] = ds.pixel_array[k]
    return frames


def test_labels_round_trip_through_dicom_seg(series, tmp_path):
    stack = read_stack(series)
    labels = _emidec_like()
    (seg_path,) = write_labels(stack, tmp_path / "out", labels=labels, fmt="dicom-seg")
    assert seg_path.name.endswith("_labels.seg.dcm")
    ds = pydicom.dcmread(seg_path)
    assert ds.Modality == "SEG" and ds.SegmentationType == "BINARY"
    assert [s.SegmentLabel for s in ds.SegmentSequence] == [
        "blood pool",
        "myocardium",
        "scar",
        "no-reflow",
    ]
    assert ds.SegmentSequence[2].SegmentedPropertyTypeCodeSequence[0].CodeValue == "12402003"
    assert ds.SegmentSequence[2].SegmentAlgorithmType == "MANUAL"
    sources = [pydicom.dcmread(p) for p in sorted(series.iterdir())]
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == sources[0].SeriesInstanceUID
    uid_of = {p.stem: str(pydicom.dcmread(p).SOPInstanceUID) for p in series.iterdir()}
    frames = _frames_by_slice(ds)
    assert len(frames) == 4 * 4
    for i, name in enumerate(stack.names):  # each frame shows its own slice's structure
        for number, value in enumerate((1, 2, 3, 4), start=1):
            frame = frames[(uid_of[name.rsplit(".", 1)[0]], number)]
            assert np.array_equal(frame > 0, labels[i] == value), (name, value)
    back = read_stack(series, labels=seg_path)
    assert np.array_equal(back.labels, labels)
    assert back.label_source == seg_path


def test_seg_of_another_series_and_unknown_segments_are_refused(series, tmp_path):
    stack = read_stack(series)
    other = tmp_path / "other"
    write_series(other, np.ones((4, 24, 30)) * 100)
    (seg_path,) = write_labels(
        read_stack(other), tmp_path / "x.seg.dcm", labels=_emidec_like(), fmt="dicom-seg"
    )
    with pytest.raises(StackError, match="another series") as info:
        read_stack(series, labels=seg_path)
    assert str(seg_path) in str(info.value)
    (mine,) = write_labels(stack, tmp_path / "m.seg.dcm", labels=_emidec_like(), fmt="dicom-seg")
    from napari_yolosam.labelspec import LabelSpec

    with pytest.raises(StackError, match="no value in the labels"):
        read_stack(series, labels=mine, spec=LabelSpec.binary())


def test_writing_never_touches_the_series(series):
    stack = read_stack(series)
    with pytest.raises(PermissionError):
        write_labels(stack, series / "labels.seg.dcm", labels=_emidec_like(), fmt="dicom-seg")
    assert not (series / "labels.seg.dcm").exists()


def test_cleaned_set_and_proposals_of_dicom_input_carry_a_seg(series, tmp_path):
    from napari_yolosam.proposals import Proposals, SliceProposal, load_proposals, save_proposals
    from napari_yolosam.review import ReviewSession

    masks = tmp_path / "masks"
    plain = read_stack(series)
    write_labels(plain, masks, labels=_emidec_like())
    stack = read_stack(series, labels=masks)
    proposed = np.zeros(stack.shape, bool)
    proposed[:, 10:14, 10:16] = True
    rows = [{"image": n, "flagged": True, "quality": 0.1} for n in stack.names]
    session = ReviewSession(stack, proposed, rows)
    session.decide(1, "accept")
    session.save_cleaned(tmp_path / "cleaned")
    back = read_stack(series, labels=tmp_path / "cleaned" / "labels.seg.dcm")
    assert np.array_equal(back.labels, session.labels)
    assert not np.array_equal(back.labels, stack.labels)  # the decision is in it
    proposals = Proposals(stack.names, [SliceProposal.of_mask(m) for m in proposed], {})
    proposals.settings["segmenter"] = "lite_medsam"
    save_proposals(proposals, stack, tmp_path / "props")
    seg = pydicom.dcmread(tmp_path / "props" / "proposals.seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["scar"]
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "lite_medsam"
    scar = read_stack(series, labels=tmp_path / "props" / "proposals.seg.dcm").scar()
    assert np.array_equal(scar, proposed)
    assert np.array_equal(load_proposals(tmp_path / "props", stack).masks(), proposed)


def test_sunnybrook_labels_round_trip(shared_data, tmp_path):
    folder = shared_data / "sunnybrook_cine_dev"
    stack = read_stack(folder / "dicom", labels=folder / "masks", series="SCD0000101")
    assert stack.labels.any()
    with pytest.warns(UserWarning, match="FrameOfReferenceUIDs"):  # this anonymised series
        (seg_path,) = write_labels(stack, tmp_path / "sb.seg.dcm", fmt="dicom-seg")
    with warnings.catch_warnings():  # the anonymised source's UIDs, copied as they are
        warnings.simplefilter("ignore", UserWarning)
        ds = pydicom.dcmread(seg_path)
    assert [s.SegmentLabel for s in ds.SegmentSequence][:2] == ["blood pool", "myocardium"]
    back = read_stack(folder / "dicom", labels=seg_path, series="SCD0000101")
    assert np.array_equal(back.labels, stack.labels)
    with pytest.raises(StackError, match="several series"):
        write_labels(
            read_stack(folder / "dicom", labels=folder / "masks"),
            tmp_path / "all.seg.dcm",
            fmt="dicom-seg",
        )


def test_convert_command_writes_a_seg_that_reads_back(series, tmp_path, capsys):
    from napari_yolosam.cli import main

    masks = tmp_path / "masks"
    write_labels(read_stack(series), masks, labels=_emidec_like())
    out = tmp_path / "labels.seg.dcm"
    args = ["convert", "--images", str(series), "--labels", str(masks), "--format", "dicom-seg"]
    assert main([*args, "--out", str(out)]) == 0
    assert np.array_equal(read_stack(series, labels=out).labels, _emidec_like())
    assert main([*args, "--out", str(out)]) == 2  # an existing output needs --overwrite
    assert "overwrite" in capsys.readouterr().err


def test_a_seg_of_one_series_over_a_stack_of_two_is_refused(series, tmp_path):
    """A SEG covering one of the stack's two series would give the other 0 mL: refused."""
    import shutil

    import pydicom

    write_series(tmp_path / "second", np.ones((4, 24, 30)) * 100, prefix="IX")
    for path in (tmp_path / "second").iterdir():
        shutil.copy(path, series / path.name)
    uids = sorted({str(pydicom.dcmread(p).SeriesInstanceUID) for p in series.iterdir()})
    one = read_stack(series, series=uids[0])
    (seg,) = write_labels(one, tmp_path / "one.seg.dcm", labels=_emidec_like(), fmt="dicom-seg")
    assert np.array_equal(read_stack(series, series=uids[0], labels=seg).labels, _emidec_like())
    with pytest.raises(StackError, match="segments 1 of the stack's 2 series") as info:
        read_stack(series, labels=seg)
    assert str(seg) in str(info.value) and uids[1] in str(info.value)


def test_a_truncated_seg_names_the_file(series, tmp_path):
    stack = read_stack(series)
    (seg,) = write_labels(stack, tmp_path / "x.seg.dcm", labels=_emidec_like(), fmt="dicom-seg")
    data = seg.read_bytes()
    seg.write_bytes(data[: len(data) // 2])  # an interrupted copy
    with pytest.raises(StackError, match="damaged or truncated DICOM Segmentation") as info:
        read_stack(series, labels=seg)
    assert str(seg) in str(info.value)
