"""The export manifest, the run partitions (--fold K), and the CLI's one-line errors for bad input.
None of this imports TensorFlow."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from model import CLASSES, ModelError
from model.demo_export import write_demo_export
from model.manifest import folds_of, partition, read_manifest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A small synthetic export: 7 classes x 5 subjects x 2 movements, 3 folds, some blurry."""
    return write_demo_export(
        tmp_path_factory.mktemp("export") / "demo", subjects_per_class=5, movements=("MV0", "MV4"),
        folds=3, size=96, blurry_fraction=0.3,
    )


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Runs `python -m model ARGS` in the repository and returns the finished process."""
    return subprocess.run([sys.executable, "-m", "model", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_demo_export_follows_the_contract(export):
    manifest = pd.read_csv(export / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(manifest.columns) == [
        "image_sha256", "subject_hash", "movement", "label", "split", "fold", "source", "flags", "synthetic", "path"
    ]
    assert set(manifest["label"]) == set(CLASSES) and set(manifest["split"]) == {"train", "val", "test"}
    assert (manifest["synthetic"] == "1").all()
    assert all(p.split("/")[0] == s and p.split("/")[1] == label for p, s, label in zip(manifest["path"], manifest["split"], manifest["label"]))
    assert manifest.groupby("subject_hash")["split"].nunique().max() == 1  # grouped by subject
    assert set(manifest.loc[manifest["flags"] != "", "split"]) == {"train"}  # blurry: training only


def test_default_partition_is_the_manifest_split(export):
    manifest = read_manifest(export)
    parts = partition(manifest)
    for name, part in parts.items():
        assert (part["split"] == name).all()
    assert sum(len(p) for p in parts.values()) == len(manifest)
    assert Path(parts["train"].loc[0, "path"]).is_file()  # paths made absolute


def test_fold_partition_validates_on_one_fold_without_blurry_images(export):
    manifest = read_manifest(export)
    assert folds_of(manifest) == [0, 1, 2]
    parts = partition(manifest, fold=1)
    pool = manifest[manifest["split"] != "test"]
    assert (parts["val"]["fold"] == 1).all() and (parts["train"]["fold"] != 1).all()
    assert (parts["val"]["flags"] == "").all()
    held_out = pool[pool["fold"] == 1]
    assert len(parts["val"]) == (held_out["flags"] == "").sum()
    assert len(parts["train"]) == (pool["fold"] != 1).sum()
    assert set(parts["train"]["subject_hash"]).isdisjoint(parts["val"]["subject_hash"])
    assert parts["test"]["image_sha256"].tolist() == manifest.loc[manifest["split"] == "test", "image_sha256"].tolist()
    with pytest.raises(ModelError, match="fold 7 not in the manifest"):
        partition(manifest, fold=7)


def test_manifest_problems_are_named(export, tmp_path):
    with pytest.raises(ModelError, match="export folder not found"):
        read_manifest(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = pd.read_csv(export / "manifest.csv", dtype=str, keep_default_na=False)
    manifest.drop(columns=["fold", "flags"]).to_csv(broken / "manifest.csv", index=False)
    with pytest.raises(ModelError, match="lacks column.*fold, flags"):
        read_manifest(broken)
    manifest.assign(label=manifest["label"].replace("L2", "L9")).to_csv(broken / "manifest.csv", index=False)
    with pytest.raises(ModelError, match="unknown label.*'L9'.*image file\\(s\\) missing"):
        read_manifest(broken)


def test_cli_reports_bad_input_in_one_line(export, tmp_path):
    missing = run_cli("train", "--export", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [f"error: export folder not found: {tmp_path / 'nope'}"]

    broken = tmp_path / "broken"
    broken.mkdir()
    pd.read_csv(export / "manifest.csv").drop(columns=["movement"]).to_csv(broken / "manifest.csv", index=False)
    no_column = run_cli("train", "--export", str(broken), "--out", str(tmp_path / "run"))
    assert no_column.returncode == 2
    assert len(no_column.stderr.strip().splitlines()) == 1 and "lacks column(s): movement" in no_column.stderr

    for args, message in [
        (["--image-size", "64"], "too small for idfnp"),
        (["--weights", str(tmp_path / "none.h5")], "--weights: no such file"),
    ]:
        result = run_cli("train", "--export", str(export), "--out", str(tmp_path / "run"), *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr

    for command in (["evaluate", "--run", str(tmp_path)], ["predict", "--run", str(tmp_path), "x.png"]):
        result = run_cli(*command)
        assert result.returncode == 2 and result.stderr.strip() == f"error: not a run folder (no config.json): {tmp_path}"
    assert not (tmp_path / "run").exists()


def test_cli_help_and_checks_do_not_import_tensorflow():
    code = (
        "import sys, model.cli, model.manifest, model.evaluation, model.runs, model.demo_export\n"
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False"
    assert run_cli("--help").returncode == 0
