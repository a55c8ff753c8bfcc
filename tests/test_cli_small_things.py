"""Small things a newcomer trips on (#30 point 6): the default model is listed, a missing
input is the sub-command's own error, and whole-stack commands offer no per-patient options."""

import pytest

from napari_yolosam.cli import main


def test_models_lists_the_packaged_default(capsys):
    assert main(["models"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("lite_medsam") and "packaged: the default segmenter" in first


def test_a_missing_input_is_the_sub_commands_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["info"])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert (
        err.startswith("usage: yolosam info")
        and "yolosam info: error: the input is required" in err
    )


@pytest.mark.parametrize("command", ["view", "train", "embed"])
def test_whole_stack_commands_offer_no_shards_or_per_phase_runs(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "--shard" not in text and "'all'" not in text and "--phase" in text
