"""A model card may name its class file only beside itself: never by an absolute path, ``..`` or a
symlink that leads out of its folder (issue 10, item 8)."""
from __future__ import annotations

import json
import os

import pytest

from segstudio.core.errors import CheckpointError
from segstudio.inference.model_card import parse_card, read_card


def _card(folder, classes):
    (folder / "net.json").write_text(json.dumps({"classes": classes}))
    return folder / "net.pt"


def _names(folder, name="names.txt", lines=("bg", "road", "car")):
    (folder / name).write_text("\n".join(lines) + "\n")


def test_classes_path_is_read_beside_the_card_not_the_working_directory(tmp_path, monkeypatch):
    model_dir, elsewhere = tmp_path / "model", tmp_path / "cwd"
    model_dir.mkdir()
    elsewhere.mkdir()
    _names(model_dir)
    _names(elsewhere, lines=("wrong", "table"))
    monkeypatch.chdir(elsewhere)
    card = read_card(_card(model_dir, "names.txt"))
    assert card.classes.names == ["bg", "road", "car"]


def test_classes_in_a_subfolder_of_the_card_are_fine(tmp_path):
    (tmp_path / "meta").mkdir()
    _names(tmp_path / "meta")
    assert read_card(_card(tmp_path, "meta/names.txt")).classes.names == ["bg", "road", "car"]


@pytest.mark.parametrize("classes", ["/etc/passwd", "../names.txt", "sub/../../names.txt"])
def test_classes_outside_the_card_folder_are_refused(tmp_path, classes):
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    _names(tmp_path)
    with pytest.raises(CheckpointError) as raised:
        read_card(_card(model_dir, classes))
    assert raised.value.path == str(model_dir / "net.json")
    assert "'classes'" in raised.value.reason and "own folder" in raised.value.reason


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symlinks need privileges on Windows")
def test_a_symlink_leading_out_of_the_card_folder_is_refused(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    _names(tmp_path, "secret.txt")
    (model_dir / "names.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(CheckpointError, match="outside the card's folder"):
        read_card(_card(model_dir, "names.txt"))


def test_an_override_path_is_still_relative_to_the_working_directory(tmp_path, monkeypatch):
    _names(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert parse_card({"classes": "names.txt"}).classes.names == ["bg", "road", "car"]
