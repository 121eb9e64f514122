"""``segstudio train``: outputs, lineage, label policies, refusals (exit 2), resume, versioned names."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.cli import main
from segstudio.core.editing.store import ProjectStore
from segstudio.inference.registry import resolve_model
from tests.training.helpers import TINY_UNET, make_dataset

FAST = ["--epochs", "2", "--steps-per-epoch", "3", "--crop", "32", "--batch-size", "2", "--device", "cpu",
        "--threads", "1"]


@pytest.fixture
def data(tmp_path):
    return make_dataset(tmp_path / "data", count=6)


def _train(data, out, *extra):
    return main(["train", "--dataset", str(data), "--model", "new:segstudio.CompactUNet", "--arch-kwargs",
                 TINY_UNET, "--out", str(out), *FAST, *extra])


def test_writes_weights_and_card_segstudio_can_load(data, tmp_path, capsys):
    out = tmp_path / "models" / "m.pth"
    assert _train(data, out, "--loss", "focal", "--class-weights", "auto") == 0
    assert capsys.readouterr().out.strip() == str(out)
    state = torch.load(out, weights_only=True)
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "segstudio.CompactUNet" and card["arch_kwargs"] == {"base": 8, "depth": 2}
    lineage = card["lineage"]
    assert lineage["parent"] is None and lineage["labels"] == {
        "policy": "corrected", "images": 6, "corrected": 0, "original": 6, "corrected_images": []}
    assert not set(lineage["train_images"]) & set(lineage["validation_images"])
    assert len(lineage["validation_images"]) == 1      # round(0.2 * 6)
    assert lineage["loss"]["name"] == "focal" and len(lineage["loss"]["class_weights"]) == 3
    assert lineage["seed"] == 0 and lineage["epochs_done"] == 2 and lineage["status"] == "complete"
    assert set(lineage["validation"]["class_iou"]) == {"background", "disc", "square"}
    assert set(lineage["parent_validation"]["class_iou"]) == {"background", "disc", "square"}
    assert lineage["segstudio_version"] and len(lineage["dataset_fingerprint"]) == 64
    entry = resolve_model(out)         # the same-stem convention: segstudio reads it back
    assert entry.class_table.names == ["background", "disc", "square"]
    assert tuple(entry.mean) == tuple(card["mean"])
    model = entry.load("cpu")
    model.load_state_dict(state)
    assert (out.parent / "m.last.ckpt").is_file()
    assert torch.load(out.parent / "m.last.ckpt", weights_only=True)["epoch"] == 2


def test_fine_tunes_its_own_output_and_records_the_parent(data, tmp_path):
    first = tmp_path / "first.pth"
    assert _train(data, first) == 0
    second = tmp_path / "second.pth"
    assert main(["train", "--dataset", str(data), "--model", str(first), "--out", str(second), *FAST]) == 0
    lineage = json.loads(second.with_suffix(".json").read_text())["lineage"]
    assert lineage["parent"] == str(first) and len(lineage["parent_sha256"]) == 64


def test_saved_corrections_are_used_and_counted(data, tmp_path):
    labels = np.array(Image.open(data / "masks" / "img_03.png"))
    labels[:10, :10] = 2
    (data / "corrected" / "masks").mkdir(parents=True)
    Image.fromarray(labels, mode="L").save(data / "corrected" / "masks" / "img_03.png")
    out = tmp_path / "c.pth"
    assert _train(data, out) == 0
    corrected = json.loads(out.with_suffix(".json").read_text())["lineage"]
    assert corrected["labels"]["corrected"] == 1 and corrected["labels"]["corrected_images"] == ["img_03"]
    out2 = tmp_path / "o.pth"
    assert _train(data, out2, "--labels", "original") == 0
    original = json.loads(out2.with_suffix(".json").read_text())["lineage"]
    assert original["labels"]["corrected"] == 0
    assert original["dataset_fingerprint"] != corrected["dataset_fingerprint"]


def test_reviewed_trains_on_accepted_and_fixed_images_only(data, tmp_path):
    store = ProjectStore.for_dataset(data)
    for name, status in (("img_00", "accepted"), ("img_02", "fixed"), ("img_04", "fixed"),
                         ("img_05", "needs_attention")):
        store.set_status(name, status)
    store.close()
    out = tmp_path / "r.pth"
    assert _train(data, out, "--labels", "reviewed") == 0
    lineage = json.loads(out.with_suffix(".json").read_text())["lineage"]
    assert sorted(lineage["train_images"] + lineage["validation_images"]) == ["img_00", "img_02", "img_04"]


def test_validation_list_file(data, tmp_path):
    names = tmp_path / "val.txt"
    names.write_text("img_01.png\n# a comment\nimg_04\n")
    out = tmp_path / "v.pth"
    assert _train(data, out, "--val-images", str(names)) == 0
    assert json.loads(out.with_suffix(".json").read_text())["lineage"]["validation_images"] == ["img_01", "img_04"]


def test_models_without_an_architecture_are_refused(data, tmp_path, capsys):
    from tests.inference.helpers import save_torchscript, tiny_net

    script = tmp_path / "net.pt"
    save_torchscript(tiny_net(3), script)
    onnx = tmp_path / "net.onnx"
    onnx.write_bytes(b"\x08\x07")
    pt2 = tmp_path / "net.pt2"
    pt2.write_bytes(b"PK\x03\x04")
    for path in (script, onnx, pt2):
        code = main(["train", "--dataset", str(data), "--model", str(path), "--out", str(tmp_path / "x.pth"), *FAST])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "not trainable: needs an architecture" in err and err.count("\n") == 0
    assert not (tmp_path / "x.pth").exists()


@pytest.mark.parametrize("args,needle", [
    (["--epochs", "0"], "--epochs"),
    (["--model-missing"], None),
])
def test_bad_input_exits_2_with_one_line(data, tmp_path, capsys, args, needle):
    if needle is None:
        code = main(["train", "--dataset", str(data), "--model", str(tmp_path / "nope.pth"), *FAST])
        needle = "nope.pth"
    else:
        code = _train(data, tmp_path / "m.pth", *args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and err.count("\n") == 0


def test_half_precision_needs_cuda(data, tmp_path, capsys):
    code = _train(data, tmp_path / "m.pth", "--precision", "fp16")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--precision fp16 needs a CUDA device" in err and err.count("\n") == 0
    assert not (tmp_path / "m.pth").exists()


def test_class_count_mismatch_is_refused(data, tmp_path, capsys):
    code = main(["train", "--dataset", str(data), "--model", "demo", "--out", str(tmp_path / "m.pth"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "4 classes but the dataset 3" in err


def test_resume_continues_from_the_last_checkpoint(data, tmp_path):
    out = tmp_path / "m.pth"
    assert _train(data, out) == 0
    assert _train(data, out, "--epochs", "3", "--resume") == 0     # the later --epochs wins
    state = torch.load(out.with_name("m.last.ckpt"), weights_only=True)
    assert state["epoch"] == 3 and state["step"] == 9 and len(state["history"]) == 3


def test_without_out_a_versioned_name_in_the_models_folder(data, capsys):
    args = ["train", "--dataset", str(data), "--model", "new:segstudio.CompactUNet", "--arch-kwargs", TINY_UNET, *FAST]
    assert main(args) == 0
    first = capsys.readouterr().out.strip()
    assert main(args) == 0
    second = capsys.readouterr().out.strip()
    assert first.endswith("CompactUNet-v001.pth") and second.endswith("CompactUNet-v002.pth")
    assert str(data / ".segstudio" / "models") in first


def test_jsonl_progress_and_cancel_from_stdin(data, tmp_path):
    out = tmp_path / "m.pth"
    cmd = [sys.executable, "-m", "segstudio", "train", "--dataset", str(data), "--model",
           "new:segstudio.CompactUNet", "--arch-kwargs", TINY_UNET, "--out", str(out), "--epochs", "1000",
           "--steps-per-epoch", "2", "--crop", "32", "--batch-size", "2", "--device", "cpu", "--threads", "1",
           "--progress", "jsonl"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "checkpoint":
            proc.stdin.write("cancel\n")
            proc.stdin.flush()
    assert proc.wait(timeout=60) == 130
    kinds = [e["event"] for e in events]
    assert kinds[0] == "loading" and "start" in kinds and "epoch" in kinds and kinds[-1] == "done"
    assert events[-1]["status"] == "cancelled" and events[-1]["out"] == str(out)
    assert json.loads(out.with_suffix(".json").read_text())["lineage"]["status"] == "cancelled"
    torch.load(out, weights_only=True)


@pytest.mark.parametrize("architecture,kwargs", [("smp.Unet", {"encoder_name": "resnet18"}),
                                                 ("torchvision.lraspp_mobilenet_v3_large", {})])
def test_smp_and_torchvision_checkpoints_are_trainable(data, tmp_path, architecture, kwargs):
    from segstudio.inference.architectures import get_architecture

    torch.manual_seed(0)
    net = get_architecture(architecture).build(3, kwargs)
    parent = tmp_path / "parent.pth"
    torch.save(net.state_dict(), parent)
    parent.with_suffix(".json").write_text(json.dumps({
        "architecture": architecture, "arch_kwargs": kwargs, "classes": ["background", "disc", "square"]}))
    out = tmp_path / "child.pth"
    assert main(["train", "--dataset", str(data), "--model", str(parent), "--out", str(out), "--epochs", "1",
                 "--steps-per-epoch", "1", "--crop", "32", "--batch-size", "2", "--device", "cpu",
                 "--threads", "1"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == architecture and card["lineage"]["parent"] == str(parent)
    for key, value in kwargs.items():
        assert card["arch_kwargs"][key] == value
    entry = resolve_model(out)
    assert entry.architecture == architecture and entry.num_classes == 3
    child = torch.load(out, weights_only=True)
    before = net.state_dict()
    assert any(not torch.equal(child[k], before[k]) for k in child if child[k].is_floating_point())


def test_time_budget_stops_the_run_and_keeps_a_validated_model(data, tmp_path, capsys):
    out = tmp_path / "t.pth"
    assert _train(data, out, "--epochs", "100000", "--max-minutes", "0.01") == 0
    assert "time budget after" in capsys.readouterr().err
    lineage = json.loads(out.with_suffix(".json").read_text())["lineage"]
    assert lineage["status"] == "time_budget" and lineage["validation"]["mean_iou"] is not None
    assert 1 <= lineage["epochs_done"] < 100000
