import json

import numpy as np
import pytest

from napari_yolosam.cli import main
from napari_yolosam.io import read_stack


def test_phantom_info_convert_boxes(tmp_path, capsys):
    assert (
        main(
            [
                "phantom",
                "--out",
                str(tmp_path / "ph"),
                "--cases",
                "2",
                "--slices",
                "3",
                "--size",
                "96",
                "--corrupt",
                "0.5",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    records = json.loads((tmp_path / "ph/corruptions.json").read_text())
    assert len(records) == 3
    capsys.readouterr()
    assert main(["info", "--images", str(tmp_path / "ph"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["slices"] == 6 and info["cases"] == 2 and info["label_spec"]["name"] == "emidec"
    assert main(["info", "--images", str(tmp_path / "ph")]) == 0  # in words
    words = capsys.readouterr().out
    assert words.startswith("6 slices of 96 x 96 px, 2 case(s)") and "slice(s) with scar" in words
    assert main(["info", str(tmp_path / "ph"), "--json"]) == 0, "the old bare path still works"
    assert json.loads(capsys.readouterr().out) == info
    assert (
        main(
            [
                "convert",
                "--images",
                str(tmp_path / "ph"),
                "--out",
                str(tmp_path / "out.tif"),
                "--format",
                "tiff",
            ]
        )
        == 0
    )
    tiff = read_stack(tmp_path / "out.tif")
    assert tiff.shape == (6, 96, 96)
    assert main(["boxes", "--images", str(tmp_path / "ph"), "--out", str(tmp_path / "boxes")]) == 0
    assert len(list((tmp_path / "boxes").glob("*.txt"))) == 6


def test_spec_options(tmp_path, capsys):
    main(
        ["phantom", "--out", str(tmp_path / "ph"), "--cases", "1", "--slices", "2", "--size", "64"]
    )
    capsys.readouterr()
    main(
        [
            "info",
            "--images",
            str(tmp_path / "ph"),
            "--scar-values",
            "3",
            "--myo-values",
            "2,3",
            "--json",
        ]
    )
    info = json.loads(capsys.readouterr().out)
    assert info["label_spec"]["scar"] == [3] and info["label_spec"]["myocardium"] == [2, 3]


@pytest.mark.parametrize(
    "args",
    [["info", "--images", "/no/such/dir"], ["info", "--images", "{tmp}", "--mask-threshold", "0"]],
)
def test_errors_are_one_line(tmp_path, capsys, args):
    (tmp_path / "x.png").write_bytes(np.zeros(4, np.uint8).tobytes())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolosam info: error:") and "Traceback" not in err


def test_convert_refuses_original_masks(tmp_path, capsys):
    main(
        ["phantom", "--out", str(tmp_path / "ph"), "--cases", "1", "--slices", "2", "--size", "64"]
    )
    assert main(["convert", str(tmp_path / "ph"), "--out", str(tmp_path / "ph/masks")]) == 2
    assert "would write over the input" in capsys.readouterr().err


def test_embed_encodes_each_slice_once_and_skips_cached_ones(phantom_folder, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["embed", "--images", str(phantom_folder), "--segmenter", "tiny", "--cache", str(cache)]
    assert main([*args, "--first", "2"]) == 0
    n = len(read_stack(phantom_folder))
    assert f"{n} slices: {n} encoded now, the rest already cached" in capsys.readouterr().out
    files = sorted(cache.glob("*/*.npy"))
    assert len(files) == n and all(np.load(f).dtype == np.float16 for f in files)
    assert main(args) == 0
    assert f"{n} slices: 0 encoded now" in capsys.readouterr().out


def test_training_defaults_have_one_source():
    """yolosam train, the DDP launcher and SamTrainConfig read the same defaults."""
    from napari_yolosam.cli.ddp import ddp_parser
    from napari_yolosam.cli.options import sam_config_from_args
    from napari_yolosam.cli.parser import build_parser
    from napari_yolosam.training.sam import SamTrainConfig

    config = SamTrainConfig()
    expected = (
        config.epochs,
        config.batch_size,
        config.lr,
        config.mode,
        config.val_fraction,
        config.seed,
        config.scar_free_share,
        config.cached_variants,
        config.targets,
        config.heart_steps,
    )
    for args in (
        build_parser().parse_args(["train", "--data", "d", "--out", "o"]),
        ddp_parser().parse_args(["--data", "d", "--out", "o"]),
    ):
        got = (
            args.epochs,
            args.batch,
            args.lr,
            args.mode,
            args.val_fraction,
            args.seed,
            args.scar_free_share,
            args.cached_variants,
            args.targets,
            args.heart_steps,
        )
        assert got == expected
        assert sam_config_from_args(args) == config


def test_one_grammar_every_input_is_images_and_every_option_has_help():
    """Every sub-command that reads a stack names it --images; every option says what it does."""
    import argparse

    from napari_yolosam.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    reading = {
        "info",
        "convert",
        "boxes",
        "embed",
        "propose",
        "train",
        "quantify",
        "semiauto",
        "audit",
        "view",
    }
    for name, command in sub.choices.items():
        options = {o for a in command._actions for o in a.option_strings}
        if name in reading:
            assert "--images" in options, name
        for action in command._actions:
            if action.option_strings and action.help != argparse.SUPPRESS:
                assert action.help and len(action.help) > 5, (name, action.option_strings)
        text = command.format_help()
        if name == "train":
            assert "--data" not in text and "(default: 20)" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["propose", "--out", "x"])  # the input is required


def test_view_names_the_missing_window_libraries(monkeypatch, capsys):
    """On a machine without Qt's xcb libraries, `yolosam view` says what to install instead of
    letting Qt abort the process."""
    import ctypes.util

    monkeypatch.setattr(
        ctypes.util, "find_library", lambda name: None if name == "xcb-cursor" else "lib"
    )
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert main(["view", "--no-block"]) == 2
    err = capsys.readouterr().err
    assert "libxcb-cursor0" in err and "sudo apt-get install -y libxcb-cursor0" in err
    assert "Traceback" not in err
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from napari_yolosam.viewer import missing_window_libraries

    assert missing_window_libraries() == []
