"""DICOM series with several phases (cine): one stack per phase, end-diastole by default."""

import json

import numpy as np
import pytest

from _dicom import write_series
from napari_yolosam.io import StackError, read_stack

PHASES, POSITIONS = 4, 3


@pytest.fixture
def cine(tmp_path):
    """A cine series: 3 positions x 4 phases, pixel value 100 * phase + 10 * position."""
    k = np.arange(PHASES * POSITIONS)
    phase, z = np.divmod(k, POSITIONS)
    volume = np.ones((len(k), 16, 20)) * (100 * phase + 10 * z)[:, None, None]
    write_series(tmp_path / "cine", volume, slope=1.0, intercept=0.0, phases=PHASES)
    return tmp_path / "cine"


def test_a_cine_series_reads_one_phase_at_a_time(cine):
    stack = read_stack(cine)
    assert len(stack) == POSITIONS and stack.phase == 0  # end-diastole: the first trigger
    assert np.allclose(stack.images[:, 0, 0], [0, 10, 20])
    assert stack.slice_spacing == pytest.approx(8.0)  # positions 8 mm apart, not 0
    assert len(stack.phases) == PHASES and np.all(np.diff(stack.phases) > 0)
    assert stack.phases[0] == pytest.approx(3.0)  # median over positions (0, 3, 6 ms)
    third = read_stack(cine, phase=2)
    assert third.phase == 2 and np.allclose(third.images[:, 0, 0], [200, 210, 220])
    assert set(third.names).isdisjoint(stack.names)
    with pytest.raises(StackError, match="has 4 phase") as info:
        read_stack(cine, phase=7)
    assert str(cine) in str(info.value)


def test_phase_masks_match_by_name_and_plain_series_have_one_phase(cine, tmp_path):
    from napari_yolosam.io import write_labels

    second = read_stack(cine, phase=1)
    labels = np.zeros(second.shape, np.uint8)
    labels[:, 4:8, 4:8] = 2
    write_labels(second, tmp_path / "masks", labels=labels)
    back = read_stack(cine, labels=tmp_path / "masks", phase=1)
    assert np.array_equal(back.labels, labels)
    plain = tmp_path / "plain"
    write_series(plain, np.ones((3, 16, 20)))
    one = read_stack(plain)
    assert one.phases == () and one.phase is None
    with pytest.raises(StackError, match="phase 1"):
        read_stack(plain, phase=1)


def test_a_position_missing_a_phase_is_named(cine):
    files = sorted(cine.iterdir())
    files[0].unlink()
    with pytest.raises(StackError, match="a series with phases needs every phase"):
        read_stack(cine)


def test_info_and_phase_option(cine, capsys):
    from napari_yolosam.cli import main

    assert main(["info", "--images", str(cine), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["slices"] == POSITIONS and summary["phases"] == PHASES
    assert summary["phase"] == 0 and len(summary["phase_times_ms"]) == PHASES
    assert main(["info", "--images", str(cine), "--phase", "3"]) == 0
    words = capsys.readouterr().out
    assert "4 phases" in words and "phase 3" in words


def test_quantify_runs_per_phase(cine, tmp_path, capsys):
    import csv

    from napari_yolosam.cli import main
    from napari_yolosam.io import write_labels

    masks = tmp_path / "masks"
    for phase in range(PHASES):  # the myocardium grows with the phase
        stack = read_stack(cine, phase=phase)
        labels = np.zeros(stack.shape, np.uint8)
        labels[:, 2 : 6 + 2 * phase, 2:12] = 2
        write_labels(stack, masks, labels=labels)
    out = tmp_path / "q" / "cases.csv"
    args = ["quantify", "--images", str(cine), "--labels", str(masks), "--out", str(out)]
    assert main([*args, "--phase", "all"]) == 0
    volumes = []
    for phase in range(PHASES):
        with open(tmp_path / "q" / f"cases_phase{phase:02d}.csv") as handle:
            (row,) = list(csv.DictReader(handle))
        volumes.append(float(row["myocardium_volume"]))
    assert np.all(np.diff(volumes) > 0), volumes
    assert main(["info", "--images", str(cine), "--phase", "all"]) == 2
    assert "needs --out" in capsys.readouterr().err
