"""torch.export programs, ONNX models, safetensors, and files of other formats (issue 11, items 1-3).

Every prediction is checked against the network itself run the plain way (``reference_logits``):
normalise, one forward pass, argmax.
"""
from __future__ import annotations

import builtins
import pickle
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from segstudio import cli
from segstudio.core.errors import CheckpointError
from segstudio.inference import model_format, model_trust
from segstudio.inference.model_file import InputSizeNeeded
from segstudio.inference.model_trust import UntrustedModelError, needs_trust, trust_file
from segstudio.inference.onnx_model import INSTALL_HINT, providers_for
from segstudio.inference.registry import resolve_model
from segstudio.inference.runner import Runner
from tests.inference.exports import rewrite_member, save_onnx, save_pt2
from tests.inference.helpers import random_image, reference_logits, save_torchscript, tiny_net, write_card

CLASSES = ["a", "b", "c"]
NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


@pytest.fixture(autouse=True)
def own_trust_store(tmp_path, monkeypatch):
    monkeypatch.setattr(model_trust, "default_trust_file", lambda: tmp_path / "trusted_models.json")


class Images:
    """The smallest dataset ``Runner.predict_dataset`` takes: samples with ``load_image``."""

    class Sample:
        def __init__(self, image, name):
            self.image, self.name, self.image_path = image, name, name

        def load_image(self):
            return self.image

    def __init__(self, images):
        self.samples = [self.Sample(image, f"img{i}") for i, image in enumerate(images)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def labels(net, image) -> np.ndarray:
    return reference_logits(net, image).argmax(1)[0].numpy()


def resized_labels(net, image, size) -> np.ndarray:
    """What a fixed-size model should give: area-shrink to ``size``, forward, bilinear back, argmax."""
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    logits = reference_logits(net, small)
    return F.interpolate(logits, size=image.shape[:2], mode="bilinear", align_corners=False).argmax(1)[0].numpy()


# -- torch.export ----------------------------------------------------------------------------------
def test_dynamic_pt2_runs_any_size_and_batch_like_the_network(tmp_path):
    net = tiny_net(3)
    # Exported on a batch of 2: torch makes that dimension range over 2.., so a single image is
    # topped up to two by the adapter, and a batch of 3 passes whole.
    path = save_pt2(net, tmp_path / "net.pt2", size=(32, 32), batch=2, dynamic=True)
    write_card(path, classes=CLASSES, **NORM)
    entry = resolve_model(path)
    assert entry.input_size is None and entry.class_table.names == CLASSES
    assert "torch.export program" in entry.description
    runner = Runner(entry, device="cpu", batch_size=3)
    images = [random_image(64, 96, seed=s) for s in range(4)]
    assert np.array_equal(runner.predict(images[0]).mask, labels(net, images[0]))
    results = dict(runner.predict_dataset(Images(images)))
    for index, image in enumerate(images):
        assert np.array_equal(results[index].mask, labels(net, image))


def test_static_pt2_is_fed_at_its_exported_size(tmp_path):
    net = tiny_net(3, seed=2)
    path = save_pt2(net, tmp_path / "fixed.pt2", size=(32, 24), batch=1)
    write_card(path, **NORM)   # no classes: read from the program's output shape
    entry = resolve_model(path)
    assert entry.input_size == (32, 24) and entry.class_table.num_classes == 3
    images = [random_image(48, 64, seed=s) for s in range(3)]
    runner = Runner(entry, device="cpu", batch_size=3)  # the program takes one image at a time
    results = dict(runner.predict_dataset(Images(images)))
    for index, image in enumerate(images):
        expected = resized_labels(net, image, (32, 24))
        assert np.mean(results[index].mask == expected) >= 0.995


def test_pt2_tiles_at_its_own_size(tmp_path):
    """A fixed-size program with --tile equal to its size sees exact tiles: the same labels as the
    network run on each tile away from the seams."""
    net = tiny_net(3, seed=4)
    path = save_pt2(net, tmp_path / "tile.pt2", size=(32, 32), batch=1)
    write_card(path, classes=CLASSES, **NORM)
    entry = resolve_model(path)
    image = random_image(64, 64, seed=5)
    mask = Runner(entry, device="cpu", tile_size=32, overlap=0).predict(image).mask
    for y in (0, 32):
        for x in (0, 32):
            tile = image[y:y + 32, x:x + 32]
            assert np.array_equal(mask[y:y + 32, x:x + 32], labels(net, tile))


def test_pt2_is_code_and_runs_only_once_trusted(tmp_path):
    path = save_pt2(tiny_net(3), tmp_path / "net.pt2", trusted=False)
    assert needs_trust(path) == path
    with pytest.raises(UntrustedModelError, match="torch.export program"):
        resolve_model(path)
    trust_file(path)
    assert needs_trust(path) is None
    assert resolve_model(path).class_table.num_classes == 3


# -- ONNX ------------------------------------------------------------------------------------------
def test_dynamic_onnx_matches_the_network(tmp_path):
    net = tiny_net(3, seed=1)
    path = save_onnx(net, tmp_path / "net.onnx", dynamic=True)
    write_card(path, classes=CLASSES, **NORM)
    entry = resolve_model(path)
    assert entry.input_size is None and "ONNX" in entry.description
    runner = Runner(entry, device="cpu", batch_size=2)
    images = [random_image(64, 96, seed=s) for s in range(3)]
    results = dict(runner.predict_dataset(Images(images)))
    for index, image in enumerate(images):
        assert np.array_equal(results[index].mask, labels(net, image))
    softmax = reference_logits(net, images[0]).softmax(1).amax(1)[0].numpy()
    assert np.allclose(runner.predict(images[0]).confidence, softmax, atol=1e-4)


def test_fixed_size_onnx_gets_its_size_and_one_image_per_call(tmp_path):
    net = tiny_net(3, seed=3)
    path = save_onnx(net, tmp_path / "fixed.onnx", size=(32, 24), dynamic=False)
    write_card(path, **NORM)
    entry = resolve_model(path)
    assert entry.input_size == (32, 24) and entry.class_table.num_classes == 3
    images = [random_image(48, 64, seed=s) for s in range(3)]
    results = dict(Runner(entry, device="cpu", batch_size=3).predict_dataset(Images(images)))
    for index, image in enumerate(images):
        assert np.mean(results[index].mask == resized_labels(net, image, (32, 24))) >= 0.995


class Softmaxed(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).softmax(1)


def test_onnx_that_outputs_probabilities_says_so_in_its_card(tmp_path):
    net = tiny_net(3, seed=6)
    path = save_onnx(Softmaxed(net), tmp_path / "probs.onnx")
    write_card(path, classes=CLASSES, output="probabilities", **NORM)
    entry = resolve_model(path)
    assert entry.output == "probabilities"
    image = random_image(32, 32, seed=7)
    prediction = Runner(entry, device="cpu").predict(image)
    probabilities = reference_logits(net, image).softmax(1)[0].numpy()
    assert np.array_equal(prediction.mask, probabilities.argmax(0))
    assert np.allclose(prediction.confidence, probabilities.max(0), atol=1e-4)
    entropy = -(probabilities * np.log(probabilities)).sum(0) / np.log(3)
    assert np.allclose(prediction.entropy, entropy, atol=1e-3)


def test_onnx_without_onnxruntime_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    path = save_onnx(tiny_net(3), tmp_path / "net.onnx")
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert INSTALL_HINT in str(err.value) and "Unsupported operand" not in str(err.value)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), random_image(16, 16))
    code = cli.main(["predict", "--model", str(path), "--images", str(tmp_path / "images"),
                     "--out", str(tmp_path / "o")])
    assert code == 2
    assert "ONNX models need `pip install segstudio[onnx]`" in capsys.readouterr().err


def test_onnx_execution_providers_follow_the_device():
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert providers_for("cuda:1", both) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert providers_for("cuda", both)[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert providers_for("cpu", both) == ["CPUExecutionProvider"]
    assert providers_for("cuda", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_onnx_kept_on_the_cpu_says_so(tmp_path, monkeypatch):
    """Device cuda with the CPU onnxruntime wheel: the session runs on the CPU and the runner's
    notices say why (the GPU itself is not needed to choose the providers)."""
    import onnxruntime

    from segstudio.inference.onnx_model import load_onnx

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    module = load_onnx(save_onnx(tiny_net(3), tmp_path / "net.onnx"), "cpu")
    assert module.load_notice is None
    module.program.to("cuda")
    assert module.program.providers == ["CPUExecutionProvider"]
    assert "install onnxruntime-gpu" in module.load_notice

    class Entry:   # what Runner needs of an entry to load it
        kind, name, input_size, short_side = "semantic", "net.onnx", None, None

        def load(self, device, progress=None):
            return module

    assert any("onnxruntime-gpu" in notice for notice in Runner(Entry(), device="cpu").notices)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_onnx_on_cuda_matches_the_network(tmp_path):
    """With onnxruntime-gpu the session runs on the CUDA provider; with the CPU wheel it runs on the
    CPU while the runner's tensors live on the GPU, and the labels are the same either way."""
    import onnxruntime

    net = tiny_net(3, seed=8)
    path = save_onnx(net, tmp_path / "net.onnx")
    write_card(path, classes=CLASSES, **NORM)
    runner = Runner(resolve_model(path), device="cuda", precision="float32")
    cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    assert runner.model.program.providers[0] == ("CUDAExecutionProvider" if cuda else "CPUExecutionProvider")
    image = random_image(64, 64, seed=9)
    assert np.mean(runner.predict(image).mask == labels(net, image)) >= 0.999


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_pt2_on_cuda_matches_the_network(tmp_path, precision):
    net = tiny_net(3, seed=12)
    path = save_pt2(net, tmp_path / "net.pt2", size=(32, 32), batch=2, dynamic=True)
    write_card(path, classes=CLASSES, **NORM)
    runner = Runner(resolve_model(path), device="cuda", precision=precision, batch_size=3)
    images = [random_image(64, 96, seed=s) for s in range(4)]
    results = dict(runner.predict_dataset(Images(images)))
    for index, image in enumerate(images):   # float16 autocast may flip a near-tie pixel
        assert np.mean(results[index].mask == labels(net, image)) >= (1.0 if precision == "float32" else 0.995)


# -- other formats ---------------------------------------------------------------------------------
def test_safetensors_state_dict_with_a_card(tmp_path):
    from safetensors.torch import save_file

    net = tiny_net(3, seed=10)
    path = tmp_path / "net.safetensors"
    save_file(net.state_dict(), str(path))
    write_card(path, architecture="tests.TinyNet", classes=CLASSES, **NORM)
    image = random_image(40, 48, seed=11)
    assert np.array_equal(Runner(resolve_model(path), device="cpu").predict(image).mask, labels(net, image))


class NeedsThirtyTwo(nn.Module):
    """A model that works only on 32 x 32 input (a reshape baked in), as many exported models do."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.head(x.reshape(x.shape[0], 3, 32, 32))


def test_model_failing_on_the_probe_says_to_set_the_input_size(tmp_path):
    path = tmp_path / "fixed.pt"
    with pytest.warns(Warning):
        torch.jit.script(NeedsThirtyTwo()).save(str(path))
    trust_file(path)
    with pytest.raises(InputSizeNeeded) as err:
        resolve_model(path)
    assert "failed on a 64x64 test input" in str(err.value)
    assert str(err.value).endswith("set input_size in the model card or pass --input-size W H")
    assert "--input-size" not in err.value.window_message and "load" in err.value.window_message
    assert resolve_model(path, input_size=(32, 32)).class_table.num_classes == 2


def _write_formats(folder):
    """One file per format the detector knows: name -> (path, kind)."""
    files = {}
    net = tiny_net(3)
    torch.save(net.state_dict(), folder / "state.pth")
    files["state dict"] = (folder / "state.pth", model_format.TORCH_CHECKPOINT)
    save_torchscript(net, folder / "script.pt")
    files["torchscript"] = (folder / "script.pt", model_format.TORCHSCRIPT)
    files["pt2"] = (save_pt2(net, folder / "prog.pt2"), model_format.EXPORT_PROGRAM)
    files["onnx"] = (save_onnx(net, folder / "net.onnx"), model_format.ONNX)
    from safetensors.torch import save_file

    save_file(net.state_dict(), str(folder / "w.safetensors"))
    files["safetensors"] = (folder / "w.safetensors", model_format.SAFETENSORS)
    (folder / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    files["hdf5"] = (folder / "keras.h5", "hdf5")
    (folder / "obj.pkl").write_bytes(pickle.dumps({"a": [1, 2]}))
    files["pickle"] = (folder / "obj.pkl", model_format.PICKLE)
    (folder / "card.json").write_text('{"classes": ["a"]}')
    files["json"] = (folder / "card.json", "json")
    cv2.imwrite(str(folder / "image.png"), np.zeros((4, 4, 3), np.uint8))
    files["png"] = (folder / "image.png", "image")
    with zipfile.ZipFile(folder / "notes.zip", "w") as archive:
        archive.writestr("notes.txt", "hello")
    files["zip"] = (folder / "notes.zip", "zip")
    with zipfile.ZipFile(folder / "compiled.pt2", "w") as archive:
        archive.writestr("model/data/aotinductor/model/model.so", b"\x7fELF")
    files["aoti"] = (folder / "compiled.pt2", model_format.AOTI_PACKAGE)
    return files


def test_formats_are_told_by_content(tmp_path):
    for name, (path, kind) in _write_formats(tmp_path).items():
        renamed = path.with_name(path.name + ".bin")   # the suffix tells nothing
        renamed.write_bytes(path.read_bytes())
        assert model_format.detect(renamed).kind == kind, name


@pytest.mark.parametrize(("name", "said"), [
    ("hdf5", "an HDF5 file (a Keras .h5 model or weights)"), ("json", "a JSON text file"),
    ("png", "a PNG image, not a model"), ("zip", "a zip archive with no model layout"),
    ("aoti", "an AOTInductor package")])
def test_unreadable_formats_say_what_they_are_and_what_is_supported(tmp_path, name, said):
    path, _ = _write_formats(tmp_path)[name]
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    message = str(err.value)
    assert said in message and "torch.export programs (.pt2), ONNX (.onnx)" in message
    assert message.endswith("see docs/model-formats.md")   # whole, not cut


def test_a_damaged_pt2_says_what_is_wrong_whole(tmp_path):
    """The issue's message: a .pt2 once read as 'not a PyTorch checkpoint (... the file was )'."""
    path = save_pt2(tiny_net(3), tmp_path / "net.pt2")
    rewrite_member(path, "models/model.json", lambda raw: raw[: len(raw) // 2])
    trust_file(path)
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    message = str(err.value)
    assert "models/model.json is not valid JSON" in message and "data.pkl" not in message
    assert message.endswith(")")   # the parser's reason, whole, then the closing parenthesis


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path):
    """An .onnx naming weights in '../' would read any file the user can; onnxruntime refuses it
    and segstudio says so as a CheckpointError naming the model."""
    from onnx import TensorProto, helper, numpy_helper

    np.ones(3, np.float32).tofile(tmp_path / "outside.bin")
    weights = numpy_helper.from_array(np.ones((1, 3, 1, 1), np.float32), "w")
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    for key, value in (("location", "../outside.bin"), ("offset", "0"), ("length", "12")):
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])], [weights])
    (tmp_path / "inner").mkdir()
    path = tmp_path / "inner" / "m.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(CheckpointError) as err:
        resolve_model(path)
    assert err.value.path == str(path) and "escapes model directory" in err.value.reason


@pytest.mark.parametrize("form", ["pt2", "onnx"])
def test_predict_command_runs_pt2_only_when_trusted_and_onnx_as_data(tmp_path, capsys, form):
    from PIL import Image

    net = tiny_net(3, seed=13)
    path = save_pt2(net, tmp_path / "net.pt2", batch=2, dynamic=True, trusted=False) if form == "pt2" else \
        save_onnx(net, tmp_path / "net.onnx")
    write_card(path, classes=CLASSES, **NORM)
    (tmp_path / "images").mkdir()
    image = random_image(64, 96, seed=14)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), image[..., ::-1])
    argv = ["predict", "--model", str(path), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "out"),
            "--device", "cpu", "--quiet"]
    if form == "pt2":
        assert cli.main(argv) == 2
        assert "contains code (torch.export program)" in capsys.readouterr().err
        argv.append("--trust-model")
    assert cli.main(argv) == 0
    written = np.array(Image.open(tmp_path / "out" / "a.png"))   # palette PNG: the indices
    assert np.array_equal(written, labels(net, image))


@pytest.mark.parametrize("form", ["pt2", "onnx"])
def test_cancel_lands_between_the_calls_a_batch_is_split_into(tmp_path, form):
    """A one-image program given a batch of 3 is called 3 times; a cancel during the first call
    stops the batch before the second, and between dataset batches as for any model."""
    from segstudio.inference.runner import CancelToken, Cancelled

    net = tiny_net(3, seed=15)
    path = save_pt2(net, tmp_path / "one.pt2", batch=1) if form == "pt2" else \
        save_onnx(net, tmp_path / "one.onnx", dynamic=False)
    write_card(path, classes=CLASSES, **NORM)
    runner = Runner(resolve_model(path), device="cpu", batch_size=3)
    token, calls = CancelToken(), []

    def cancel_during_the_first_call(module, args, output):
        calls.append(args[0].shape[0])
        token.cancel()

    runner.model.program.register_forward_hook(cancel_during_the_first_call)
    images = Images([random_image(32, 32, seed=s) for s in range(6)])
    with pytest.raises(Cancelled):
        list(runner.predict_dataset(images, cancel=token))
    assert calls == [1]
    calls.clear()
    results = dict(runner.predict_dataset(images, indices=[4]))   # a later job is unaffected
    assert calls == [1] and np.array_equal(results[4].mask, labels(net, images[4].image))
