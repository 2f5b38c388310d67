"""--download against a local HTTP server on 127.0.0.1 serving tiny release files in the real
formats (MNIST's gzipped idx files, CIFAR-10's python tarball): the dataset lands in --data-dir and
reads back as written; a wrong MD5, a cut-off transfer and a server that is not there are one line
each, with nothing left in --data-dir."""

import gzip
import hashlib
import http.server
import io
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from hilt.cli import app
from hilt.data import download as dl
from hilt.data.registry import load_dataset
from test_data import make_fake
from tests.helpers import message_lines, runner


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path.startswith("/cut/"):  # promises the whole file, sends half of it, hangs up
            body = (self.server.folder / self.path[5:]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    httpd.folder = folder
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def release_files(name, src, served):
    """The fakes of `name` packed as its release is; [(file name, md5)]."""
    if name == "mnist":
        files = []
        for path in sorted((src / "MNIST" / "raw").iterdir()):
            packed = served / f"{path.name}.gz"
            packed.write_bytes(gzip.compress(path.read_bytes()))
            files.append(packed.name)
        return files, "MNIST/raw"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (served / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    return ["cifar-10-python.tar.gz"], "."


def serve(monkeypatch, server, name, src, md5=None, path=""):
    files, unpack_to = release_files(name, src, server.folder)
    base = f"http://127.0.0.1:{server.server_port}/{path}"
    monkeypatch.setattr(dl, "releases", lambda wanted: [
        dl.Release(base + f, md5 or hashlib.md5((server.folder / f).read_bytes()).hexdigest(), unpack_to) for f in files])


def train(data_dir, name, *extra):
    return runner.invoke(app, ["train", "--dataset", name, "--device", "exact", "--epochs", "1", "--data-dir", str(data_dir),
                               "--out", str(data_dir.parent / "runs"), *extra])


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_download_fetches_checks_and_unpacks_into_data_dir(tmp_path, rng, monkeypatch, server, name):
    (xtr, ytr), (xte, yte), *_ = make_fake(name, tmp_path / "src", rng)
    serve(monkeypatch, server, name, tmp_path / "src")
    data_dir = tmp_path / "data"
    missing = train(data_dir, name)
    assert missing.exit_code == 2 and "add --download to fetch it" in missing.stderr
    result = train(data_dir, name, "--download")
    assert result.exit_code == 0, result.output
    assert any(line.startswith(f"downloading http://127.0.0.1:{server.server_port}/") for line in result.stderr.splitlines())
    ds = load_dataset(name, data_dir=str(data_dir))
    np.testing.assert_array_equal(ds.y_train, ytr)
    np.testing.assert_array_equal(ds.y_test, yte)
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.parametrize("how", ["wrong md5", "cut off", "no server"])
def test_a_bad_download_is_one_line_and_leaves_nothing(tmp_path, rng, monkeypatch, server, how):
    make_fake("mnist", tmp_path / "src", rng)
    serve(monkeypatch, server, "mnist", tmp_path / "src", md5="0" * 32 if how == "wrong md5" else None,
          path="cut/" if how == "cut off" else "")
    if how == "no server":
        server.shutdown()
        server.server_close()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mine.txt").write_text("keep me")
    result = train(data_dir, "mnist", "--download")
    lines = [line for line in message_lines(result.stderr) if not line.startswith("downloading ")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    expected = {"wrong md5": "is not the release's 00000000", "cut off": "is not the release's",
                "no server": "cannot download http://127.0.0.1"}[how]
    assert expected in lines[0] and "nothing was kept" in lines[0], lines[0]
    assert sorted(p.name for p in data_dir.iterdir()) == ["mine.txt"] and (data_dir / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "runs").exists()


def test_the_release_files_are_torchvisions():
    from torchvision.datasets import CIFAR10, MNIST

    mnist = dl.releases("mnist")
    assert [(r.url, r.md5) for r in mnist] == [(MNIST.mirrors[0] + f, md5) for f, md5 in MNIST.resources]
    assert [r.filename for r in mnist] == [f for f, _ in MNIST.resources]
    (cifar,) = dl.releases("cifar10")
    assert (cifar.url, cifar.md5, cifar.filename) == (CIFAR10.url, CIFAR10.tgz_md5, CIFAR10.filename)
    assert {name: len(dl.releases(name)) for name in ("fashion-mnist", "cifar100", "stl10", "tiny-imagenet")} == \
        {"fashion-mnist": 4, "cifar100": 1, "stl10": 1, "tiny-imagenet": 1}
