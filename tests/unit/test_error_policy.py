"""Bad input or a bug, and how results reach their final names.

Bad input (dlmi.io.InputError) stops a job with one line naming the file; anything else that goes wrong is
a bug and keeps its traceback: NaN in an image the workflow computed is one. Every rule script runs its
`main` inside `runlog.stop_on_input_error()`. Every result is written through `dlmi.io.atomic_write`: a
temporary file in the target folder, with the mode the umask gives, that `io.leftover_temporaries` finds
when a kill leaves it behind, renamed to the final name once complete.
"""
import ast
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from workflow_runner import rule_script

from dlmi import figures, io
from dlmi.register import itk
from dlmi_workflow import runlog

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


script = rule_script


def mode(path):
    return Path(path).stat().st_mode & 0o777


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


# ---------------------------------------------------------------------------------------------------------
# bad input or bug


def test_nan_in_a_computed_image_is_a_bug_with_a_traceback(tmp_path):
    """save_nifti writes what the workflow computed from checked inputs: NaN there is a bug, so it is not an
    InputError, which stop_on_input_error would turn into one log line and exit status 1."""
    path = tmp_path / "sub-001_label-GM_probseg.nii.gz"
    data = np.ones((2, 2, 2))
    data[0, 1, 1] = np.nan
    with pytest.raises(ValueError) as err, runlog.stop_on_input_error():
        io.save_nifti(path, data, np.eye(4))
    assert not isinstance(err.value, io.InputError)
    assert str(err.value) == f"{path}: refusing to write an image with NaN or Inf voxels (1 of 8)"
    assert not path.exists() and io.leftover_temporaries(path) == []


def rule_scripts():
    return sorted((REPO / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", rule_scripts(), ids=lambda p: p.name)
def test_every_rule_script_runs_main_inside_stop_on_input_error(path):
    tree = ast.parse(path.read_text(), str(path))
    block = next(node for node in tree.body
                 if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'")

    def main_calls(node):
        return [n for n in ast.walk(node) if isinstance(n, ast.Call) and ast.unparse(n.func) == "main"]

    guarded = [call for node in ast.walk(block) if isinstance(node, ast.With)
               and any(ast.unparse(item.context_expr) == "runlog.stop_on_input_error()" for item in node.items)
               for call in main_calls(node)]
    assert main_calls(block), f"{path.name}: its __main__ block does not call main"
    assert len(guarded) == len(main_calls(block)), f"{path.name}: main runs outside runlog.stop_on_input_error()"


# ---------------------------------------------------------------------------------------------------------
# atomic writes: transforms and figures like every other result


def test_transforms_get_the_mode_of_every_other_result(tmp_path, umask_027):
    """mkstemp makes 0600 files: a transform renamed from one would be unreadable by the group on a cluster."""
    io.save_nifti(tmp_path / "t1w.nii.gz", np.zeros((2, 2, 2)), np.eye(4))
    for name in ("xfm.mat", "xfm.txt", "xfm.tfm"):
        itk.write_transform(tmp_path / name, np.eye(4))
        assert mode(tmp_path / name) == mode(tmp_path / "t1w.nii.gz") == 0o640, name
        np.testing.assert_allclose(itk.read_transform(tmp_path / name), np.eye(4), atol=1e-12)


def spy_on(monkeypatch, owner, name, path):
    """Replace owner.name (a writer called with the temporary path second) by one that also records
    (temporary path, what io.leftover_temporaries(path) finds, whether path exists, format keyword)
    at the moment the temporary file is complete: what a kill just then would leave behind."""
    seen, real = [], getattr(owner, name)

    def spy(first, tmp, *args, **kwargs):
        result = real(first, tmp, *args, **kwargs)
        seen.append((Path(tmp), io.leftover_temporaries(path), Path(path).exists(), kwargs.get("format")))
        return result

    monkeypatch.setattr(owner, name, spy)
    return seen


def test_a_transform_left_by_a_kill_is_found_as_a_leftover(tmp_path, monkeypatch):
    import SimpleITK as sitk

    path = tmp_path / "sub-001_from-T1w_to-template_xfm.mat"
    seen = spy_on(monkeypatch, sitk, "WriteTransform", path)
    itk.write_transform(path, np.eye(4))
    [(tmp, leftovers, existed, _)] = seen
    assert leftovers == [tmp] and tmp.parent == tmp_path and tmp.suffix == ".mat" and not existed
    assert path.exists() and io.leftover_temporaries(path) == []


def test_qc_figures_are_written_atomically(tmp_path, monkeypatch, umask_027):
    path = tmp_path / "qc" / "recon_t1.png"
    seen = spy_on(monkeypatch, Figure, "savefig", path)
    image = np.random.default_rng(0).random((6, 7, 8))
    figures.mosaic([("sub-001", image, image > 0.5)], path, overlay_kind="contour", title="recon t1")
    [(tmp, leftovers, existed, fmt)] = seen
    assert leftovers == [tmp] and not existed and fmt == "png" and tmp.suffix != ".png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE and mode(path) == 0o640
    assert io.leftover_temporaries(path) == []


@pytest.mark.parametrize("figure", ["roc", "confusion"])
def test_the_model_figures_are_written_atomically(tmp_path, monkeypatch, umask_027, figure):
    path = tmp_path / f"{figure}.png"
    seen = spy_on(monkeypatch, Figure, "savefig", path)
    predictions = pd.DataFrame({"task": "diagnosis", "model": "linear_svm", "features": "t1_volumes",
                                "label": [1, 0, 1, 0], "score": [1.0, -1.0, 0.5, 0.2]})
    metrics = pd.DataFrame({"task": ["diagnosis"], "model": ["linear_svm"], "features": ["t1_volumes"], "auc": [1.0]})
    summarise = script("summarise_models")
    if figure == "roc":
        summarise.plot_roc(predictions, metrics, path)
    else:
        summarise.plot_confusion(predictions, path)
    [(tmp, leftovers, existed, fmt)] = seen
    assert leftovers == [tmp] and not existed and fmt == "png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE and mode(path) == 0o640
