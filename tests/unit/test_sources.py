"""dlmi_workflow.sources: the import closure of a rule script, on hand-made scripts with a known answer."""
import os

from dlmi_workflow import sources


def test_imports_of_every_form_are_found(tmp_path):
    script = tmp_path / "rule.py"
    script.write_text(
        "import numpy as np\n"
        "from dlmi import io, runlog\n"
        "from dlmi.recon.ct import fbp\n"
        "def lazy():\n"
        "    import SimpleITK\n"
        "    from dlmi.analysis.metrics import nrmse\n"
    )
    assert sources.imported_modules(script) == {
        "numpy", "dlmi", "dlmi.io", "dlmi.runlog", "dlmi.recon.ct", "dlmi.recon.ct.fbp", "SimpleITK",
        "dlmi.analysis.metrics", "dlmi.analysis.metrics.nrmse"}


def test_relative_imports_resolve_against_the_package(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text("from .ct import fbp\nfrom .. import io\n")
    assert sources.imported_modules(module, "dlmi.recon") == {"dlmi.recon.ct", "dlmi.recon.ct.fbp", "dlmi", "dlmi.io"}


def test_closure_follows_imports_between_library_modules(tmp_path):
    script = tmp_path / "rule.py"
    script.write_text("from dlmi.recon import pet\n")  # dlmi.recon.pet imports dlmi.recon.projector
    closure = sources.library_modules(script)
    assert closure == ("dlmi", "dlmi.recon", "dlmi.recon.pet", "dlmi.recon.projector")
    assert "torch" in sources.third_party_imports(script) and "math" not in sources.third_party_imports(script)
    line = sources.library_version(script)
    digest = sources.code_hash(sources.module_path("dlmi.recon.projector"))[:12]
    assert f"dlmi.recon.projector@{digest}" in line.split()


def test_a_script_without_dlmi_imports_has_an_empty_closure(tmp_path):
    script = tmp_path / "rule.py"
    script.write_text("import numpy\n")
    assert sources.library_modules(script) == () and sources.library_version(script) == ""


def test_export_to_jobs_puts_the_folder_first_once(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    sources.export_to_jobs("/repo/scripts")
    sources.export_to_jobs("/repo/scripts")
    assert os.environ["PYTHONPATH"] == os.pathsep.join(["/repo/scripts", "/elsewhere"])


def test_code_hash_ignores_comments_docstrings_and_layout_but_not_code(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text('"""Module."""\nX = 1\n\n\ndef f(y):\n    """Doc."""\n    return y + X\n')
    b.write_text('"""Other words."""\n# a comment\nX = 1\ndef f(y):  # inline\n    """Other."""\n    return (y + X)\n')
    c.write_text('"""Module."""\nX = 2\n\n\ndef f(y):\n    """Doc."""\n    return y + X\n')
    assert sources.code_hash(a) == sources.code_hash(b) != sources.code_hash(c)
    d = tmp_path / "d.py"
    d.write_text('def f(y):\n    """Only a docstring."""\n')
    assert sources.code_hash(d) != sources.code_hash(a)  # the function remains, with an empty body


def test_workflow_support_is_outside_the_closure(tmp_path):
    script = tmp_path / "rule.py"
    script.write_text("from dlmi import io\nfrom dlmi_workflow import runlog\n")
    assert "dlmi_workflow.runlog" not in sources.library_modules(script)
    assert set(sources.library_modules(script)) == {"dlmi", "dlmi.io", "dlmi.spatial", "dlmi.spatial.orientation"}
