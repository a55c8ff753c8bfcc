"""`yolosam propose` and `yolosam models`, downloads served from 127.0.0.1 only."""

import hashlib
import http.server
import threading

import numpy as np
import pytest

from napari_yolosam.cli import main
from napari_yolosam.io import read_stack
from napari_yolosam.models import model_store


def test_propose_cli_with_configs_and_checkpoints(
    phantom_folder, tiny_segmenter, tiny_detector, tmp_path, capsys
):
    out = tmp_path / "props"
    assert (
        main(
            [
                "propose",
                "--images",
                str(phantom_folder),
                "--detector",
                "yolo11n.yaml",
                "--segmenter",
                "tiny",
                "--conf",
                "0.001",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    stack = read_stack(phantom_folder)
    assert sorted(p.name for p in (out / "masks").iterdir()) == sorted(stack.names)
    assert (out / "probabilities.npz").exists() and (out / "prompts.json").exists()
    assert len((out / "summary.csv").read_text().splitlines()) == len(stack) + 1
    seg = tiny_segmenter.save(tmp_path / "seg.pth")
    det = tiny_detector.save(tmp_path / "det.pt")
    capsys.readouterr()
    assert (
        main(
            [
                "propose",
                "--images",
                str(phantom_folder),
                "--detector",
                str(det),
                "--segmenter",
                str(seg),
                "--out",
                str(tmp_path / "props2"),
            ]
        )
        == 0
    )
    assert "proposed 8 slices" in capsys.readouterr().out
    assert (
        main(
            [
                "propose",
                "--images",
                str(phantom_folder),
                "--detector",
                "none",
                "--segmenter",
                str(seg),
                "--out",
                str(tmp_path / "props3"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "propose",
                "--images",
                str(phantom_folder),
                "--segmenter",
                str(tmp_path / "nope.pth"),
                "--out",
                str(tmp_path / "props4"),
            ]
        )
        == 2
    )
    assert "nope.pth" in capsys.readouterr().err


class _Server:
    def __init__(self, payload: bytes):
        payload_ = payload

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload_)))
                self.end_headers()
                self.wfile.write(payload_)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/weights.pth"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def online(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("YOLOSAM_OFFLINE")


def test_download_verifies_sha256(online, tiny_segmenter, tmp_path, capsys):
    import torch

    torch.save(tiny_segmenter.model.state_dict(), tmp_path / "w.pth")
    payload = (tmp_path / "w.pth").read_bytes()
    good = hashlib.sha256(payload).hexdigest()
    with _Server(payload) as server:
        with pytest.raises(model_store.DownloadError, match="does not match"):
            model_store.download("sam_vit_b", url=server.url)
        assert not list(model_store.weights_dir().iterdir()), "no partial file is left"
        with pytest.raises(model_store.DownloadError, match="checksum"):
            model_store.download("mobile_sam", url=server.url)
        seen = []
        path = model_store.download(
            "mobile_sam", url=server.url, sha256=good, progress=lambda d, t: seen.append((d, t))
        )
        assert path.read_bytes() == payload and seen[-1] == (len(payload), len(payload))
        assert (
            main(["models", "download", "sam_vit_b", "--url", server.url, "--sha256", good]) == 0
        )
    capsys.readouterr()
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "sam_vit_b" in listing and str(model_store.weights_dir()) in listing
    from napari_yolosam.models.checkpoints import CheckpointError
    from napari_yolosam.models.segmenter import Segmenter

    with pytest.raises(CheckpointError, match="holds tiny weights, not vit_b"):
        Segmenter.from_spec("sam_vit_b")  # the served file was tiny weights under vit_b's name


def test_offline_switch_and_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    with pytest.raises(model_store.DownloadError, match="YOLOSAM_OFFLINE"):
        model_store.download("sam_vit_b")
    monkeypatch.delenv("YOLOSAM_OFFLINE")
    with pytest.raises(model_store.DownloadError, match="failed"):
        model_store.download("sam_vit_b", url="http://127.0.0.1:9/none", timeout=2)
    with pytest.raises(model_store.DownloadError, match="Google Drive"):
        model_store.download("medsam")
    assert np.all([row["path"] is None for row in model_store.list_models() if row["url"]])


def test_download_fetches_http_only(online, tmp_path, capsys):
    """A local file's path with its hash is never saved as a checkpoint (file://, ftp:, ...)."""
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    for url in (secret.as_uri(), f"ftp://127.0.0.1/{secret.name}", str(secret)):
        with pytest.raises(model_store.DownloadError, match="not an http"):
            model_store.download("sam_vit_b", url=url, sha256=digest)
    argv = ["models", "download", "sam_vit_b", "--url", secret.as_uri(), "--sha256", digest]
    assert main(argv) == 2 and "not an http" in capsys.readouterr().err
    assert not list(model_store.weights_dir().iterdir())
