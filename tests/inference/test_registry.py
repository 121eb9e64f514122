"""Model sources: TorchScript, state dicts, SMP folders, torchvision with cached weights, offline."""
from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from segstudio.core.io.classes import ClassTable
from segstudio.core.errors import CheckpointError
from segstudio.inference import download
from segstudio.inference.registry import list_models, resolve_model
from segstudio.core.evaluation.prediction import Prediction
from segstudio.inference.runner import Runner
from tests.inference.helpers import TINY, random_image, reference_logits, save_tiny, save_torchscript, \
    tiny_net, write_card


def _check_semantic(entry, image, num_classes):
    prediction = Runner(entry, device="cpu").predict(image)
    assert isinstance(prediction, Prediction) and prediction.instances is None
    assert prediction.mask.shape == image.shape[:2] and prediction.mask.dtype == np.uint8
    assert prediction.confidence.shape == image.shape[:2] and prediction.confidence.dtype == np.float32
    assert prediction.entropy.dtype == np.float32
    assert prediction.mask.max() < num_classes
    assert 1.0 / num_classes - 1e-5 <= prediction.confidence.min() and prediction.confidence.max() <= 1.0
    assert 0.0 <= prediction.entropy.min() and prediction.entropy.max() <= 1.0
    return prediction


def test_state_dict_file_gives_the_reference_argmax(tmp_path):
    path = tmp_path / "net.pth"
    net = save_tiny(path, num_classes=4)
    entry = resolve_model(path)
    assert (entry.kind, entry.architecture, entry.class_table.num_classes) == ("semantic", TINY, 4)
    assert entry.mean == (0.5, 0.5, 0.5) and entry.std == (0.25, 0.25, 0.25)
    image = random_image(40, 56)
    prediction = _check_semantic(entry, image, 4)
    expected = reference_logits(net, image)[0]
    np.testing.assert_array_equal(prediction.mask, expected.argmax(0).numpy())
    np.testing.assert_allclose(prediction.confidence, expected.softmax(0).max(0).values.numpy(), atol=1e-5)


def test_torchscript_file_with_and_without_card(tmp_path):
    path = tmp_path / "scripted.pt"
    net = tiny_net(5)
    save_torchscript(net, path)
    entry = resolve_model(path)
    assert entry.architecture is None and entry.class_table.num_classes == 5  # probed
    assert entry.size_divisor == 32
    image = random_image(37, 45)
    prediction = _check_semantic(entry, image, 5)
    # Padded to 64 x 64 and cropped back: away from the padded edge it equals the plain forward.
    expected = reference_logits(net, image, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))[0]
    np.testing.assert_array_equal(prediction.mask[:-2, :-2], expected.argmax(0).numpy()[:-2, :-2])
    write_card(path, classes=["a", "b", "c", "d", "e"], channel_order="BGR", input_size=[32, 24])
    entry = resolve_model(path)
    assert entry.class_table.names == ["a", "b", "c", "d", "e"]
    assert (entry.channel_order, entry.input_size) == ("BGR", (32, 24))
    _check_semantic(entry, image, 5)


def test_overrides_win_over_the_card(tmp_path):
    path = tmp_path / "net.pth"
    save_tiny(path, num_classes=3)
    classes = tmp_path / "names.txt"
    classes.write_text("_background_\nroad\ncar\n")
    entry = resolve_model(path, classes=str(classes), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5),
                          channel_order="BGR", input_size=(64, 48))
    assert entry.class_table.names == ["background", "road", "car"]
    assert entry.mean == (0.1, 0.2, 0.3) and entry.channel_order == "BGR" and entry.input_size == (64, 48)
    with pytest.raises(CheckpointError, match="list 2 classes but .* has 3"):
        resolve_model(path, classes=["only", "two"])
    with pytest.raises(TypeError, match="colour"):
        resolve_model(path, colour="red")


def test_smp_directory_and_smp_state_dict(tmp_path):
    smp = pytest.importorskip("segmentation_models_pytorch")
    torch.manual_seed(0)
    model = smp.Unet("resnet18", encoder_weights=None, classes=3, decoder_channels=(32, 16, 16, 8, 8)).eval()
    folder = tmp_path / "unet"
    model.save_pretrained(str(folder))
    write_card(folder, classes=["bg", "a", "b"], mean=[0.5] * 3, std=[0.25] * 3)
    entry = resolve_model(folder)
    assert entry.architecture == "smp.Unet" and entry.class_table.names == ["bg", "a", "b"]
    image = random_image(64, 96)
    prediction = _check_semantic(entry, image, 3)
    expected = reference_logits(model, image)[0]
    np.testing.assert_array_equal(prediction.mask, expected.argmax(0).numpy())

    weights = tmp_path / "unet_weights.pth"
    torch.save({"model": model.state_dict()}, weights)
    with pytest.raises(CheckpointError, match="needs a weights file"):
        resolve_model("smp:Unet")
    with pytest.raises(CheckpointError, match="does not fit smp.Unet"):
        resolve_model("smp:Unet", weights=weights, encoder="resnet18")  # default decoder_channels
    entry = resolve_model("smp:Unet", weights=weights, encoder="resnet18",
                          arch_kwargs={"decoder_channels": [32, 16, 16, 8, 8]}, mean=[0.5] * 3, std=[0.25] * 3)
    assert entry.class_table.num_classes == 3
    np.testing.assert_array_equal(Runner(entry, device="cpu").predict(image).mask, prediction.mask)


def test_smp_state_dict_encoder_is_guessed(tmp_path):
    smp = pytest.importorskip("segmentation_models_pytorch")
    model = smp.FPN("resnet18", encoder_weights=None, classes=2)
    weights = tmp_path / "fpn.pth"
    torch.save(model.state_dict(), weights)
    entry = resolve_model("smp:FPN", weights=weights)
    assert entry.class_table.num_classes == 2 and entry.architecture == "smp.FPN"
    _check_semantic(entry, random_image(64, 64), 2)


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


def test_offline_download_names_the_cache_file(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    entry = resolve_model("torchvision:deeplabv3_resnet50")
    assert entry.class_table == ClassTable.voc() and entry.short_side == 520
    with pytest.raises(download.ModelDownloadError) as err:
        Runner(entry, device="cpu")
    expected = torch_home / "hub" / "checkpoints" / "deeplabv3_resnet50_coco-cd0a2569.pth"
    assert err.value.path == str(expected)
    assert "Load model file" in err.value.reason and "name resolution" in err.value.reason
    assert not expected.parent.exists() or list(expected.parent.iterdir()) == []  # no partial file left


def test_cached_torchvision_weights_are_used(torch_home, monkeypatch):
    from torchvision.models.segmentation import LRASPP_MobileNet_V3_Large_Weights, lraspp_mobilenet_v3_large

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    torch.manual_seed(0)
    reference = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21).eval()
    url = LRASPP_MobileNet_V3_Large_Weights.DEFAULT.url
    cached = torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), cached)
    entry = resolve_model("torchvision:lraspp_mobilenet_v3_large")
    assert entry.class_table.num_classes == 21 and entry.kind == "semantic"
    model = entry.load("cpu")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)["out"], reference(x)["out"])
    image = random_image(48, 80)
    prediction = Runner(entry, device="cpu").predict(image)
    assert prediction.mask.shape == (48, 80) and prediction.mask.max() <= 20


def test_torchvision_state_dict_architecture_is_matched(tmp_path):
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    torch.manual_seed(0)
    model = deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=6, aux_loss=True)
    path = tmp_path / "finetuned.pth"
    torch.save({"model": {"module." + k: v for k, v in model.state_dict().items()}}, path)
    entry = resolve_model(path)
    assert entry.architecture == "torchvision.deeplabv3_mobilenet_v3_large"
    assert entry.class_table.num_classes == 6 and entry.class_table.names[0] == "class 0"
    loaded = entry.load("cpu")
    assert loaded.aux_classifier is None  # not computed at inference
    _check_semantic(entry, random_image(64, 64), 6)
    # The same file named as a different architecture: the shape mismatch is reported.
    with pytest.raises(CheckpointError, match="lraspp_mobilenet_v3_large"):
        resolve_model("torchvision:lraspp_mobilenet_v3_large", weights=path)


def test_download_streams_with_progress_and_checks_hash(tmp_path, monkeypatch):
    payload = b"x" * (3 * download.CHUNK + 5)
    digest = hashlib.sha256(payload).hexdigest()[:8]

    class Response(io.BytesIO):
        headers = {"Content-Length": str(len(payload))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(payload))
    calls = []
    target = tmp_path / f"weights-{digest}.pth"
    download.download(f"https://example.invalid/weights-{digest}.pth", target, lambda d, t: calls.append((d, t)))
    assert target.read_bytes() == payload
    assert calls[0] == (0, len(payload)) and calls[-1] == (len(payload), len(payload)) and len(calls) == 5
    bad = tmp_path / "weights-deadbeef.pth"
    with pytest.raises(ValueError, match="does not match"):
        download.download("https://example.invalid/weights-deadbeef.pth", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_list_models_has_every_entry(monkeypatch):
    names = [e.name for e in list_models()]
    for name in ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
                 "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "maskrcnn_resnet50_fpn",
                 "maskrcnn_resnet50_fpn_v2"):
        assert f"torchvision:{name}" in names
    for arch in ("Unet", "UnetPlusPlus", "DeepLabV3", "DeepLabV3Plus", "PSPNet", "PAN", "FPN", "Segformer"):
        assert f"smp:{arch}" in names
    by_name = {e.name: e for e in list_models()}
    mask_rcnn = by_name["torchvision:maskrcnn_resnet50_fpn"]
    assert mask_rcnn.kind == "instance" and mask_rcnn.class_table == ClassTable.coco_things()
    assert mask_rcnn.label_map[90] == 80 and mask_rcnn.label_map[12] == 255
    assert by_name["torchvision:fcn_resnet50"].class_table.num_classes == 21
    assert by_name["smp:Segformer"].class_table is None


def test_demo_entry_matches_the_demo_dataset():
    from segstudio.resources import ResourceNotFound, resource_path

    try:
        classes = ClassTable.load(resource_path("demo", "classes.json"))
        resource_path("demo", "model", "demo_unet.pth")
    except ResourceNotFound:
        pytest.skip("demo assets not built")
    entry = resolve_model("demo")
    assert (entry.name, entry.kind, entry.architecture) == ("demo", "semantic", "segstudio.CompactUNet")
    assert entry.class_table.names == classes.names
    assert (entry.class_table.colors == classes.colors).all()
    assert entry.input_size is None and entry.short_side is None and entry.size_divisor == 1
    assert "demo" in [e.name for e in list_models()]


def test_the_torch_free_listing_matches_the_resolved_entries():
    from segstudio.inference.catalog import list_available

    listed = [(m.name, m.kind, m.description) for m in list_available()]
    assert listed == [(e.name, e.kind, e.description) for e in list_models()]
