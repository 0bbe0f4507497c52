"""`fnp`, the one console command (labeling/fnp.py): it hands each subcommand to the command line
that serves it (labeling, model, asymmetry) or starts the web app, and pyproject.toml installs it.
The tests run `python -m labeling.fnp`, which is what the installed `fnp` script calls."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import tomllib
import urllib.request

import pytest

from labeling import fnp
from tests.browser import free_port
from tests.conftest import ROOT


def run_fnp(*args: str, cwd=ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labeling.fnp", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_help_lists_every_command_of_every_command_line_once(data_dir):
    from asymmetry.__main__ import build_parser as asymmetry_parser
    from labeling.cli import build_parser as labeling_parser
    from model.cli import parser as model_parser

    out = run_fnp("--help")
    assert out.returncode == 0, out.stderr
    names = ["serve", *(n for n, _ in fnp._subcommands(labeling_parser())), *(n for n, _ in fnp._subcommands(model_parser())),
             *(f"asymmetry {n}" for n, _ in fnp._subcommands(asymmetry_parser()))]
    listed = [line.split("  ")[1].strip() for line in out.stdout.splitlines()
              if line.startswith("  ") and not line.lstrip().startswith("-")]
    assert listed == names
    assert {"import", "demo", "export", "agreement", "users", "db", "train", "predict", "asymmetry measure"} <= set(listed)
    assert "--version" in out.stdout


def test_version_is_the_packages():
    from labeling.version import __version__

    out = run_fnp("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"fnp (fnp-triplecheck) {__version__}")


def test_subcommands_reach_their_command_lines(data_dir):
    imp = run_fnp("import", "--help")
    assert imp.returncode == 0 and imp.stdout.startswith("usage: fnp import") and "--manifest" in imp.stdout
    train = run_fnp("train", "--help")
    assert train.returncode == 0 and train.stdout.startswith("usage: fnp train") and "--export" in train.stdout
    lmk = run_fnp("asymmetry", "measure", "--help")
    assert lmk.returncode == 0 and lmk.stdout.startswith("usage: fnp asymmetry measure") and "--overlay" in lmk.stdout
    # Past the parser: the trainer checks its input (before importing Keras) and says what is wrong.
    missing = run_fnp("train", "--export", str(data_dir / "no-such-export"), "--out", str(data_dir / "run"))
    assert missing.returncode == 2 and missing.stderr.startswith("error:"), missing.stderr
    unknown = run_fnp("no-such-command")
    assert unknown.returncode == 2 and "unknown command 'no-such-command'" in unknown.stderr
    assert not data_dir.exists()  # help and refused commands leave no project behind


def test_help_and_routing_import_no_deep_learning_library():
    code = ("import sys\nfrom labeling.fnp import main\nmain(['--help'])\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_command_names_do_not_collide():
    from asymmetry.__main__ import build_parser as asymmetry_parser
    from labeling.cli import build_parser as labeling_parser
    from model.cli import parser as model_parser

    labeling = {n for n, _ in fnp._subcommands(labeling_parser())}
    assert {n for n, _ in fnp._subcommands(model_parser())} == set(fnp.MODEL_COMMANDS)
    assert not labeling & {"serve", "asymmetry", "help", *fnp.MODEL_COMMANDS}
    # `fnp measure` is the project's step (measure, then check 2); the photo tool is `fnp asymmetry measure`.
    assert "measure" in labeling and "measure" in {n for n, _ in fnp._subcommands(asymmetry_parser())}


def test_measure_is_the_projects_and_asymmetry_measure_the_photo_tool(capsys):
    with pytest.raises(SystemExit):
        fnp.main(["measure", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: fnp measure") and "--as-user" in out  # labeling's: it acts as someone
    with pytest.raises(SystemExit):
        fnp.main(["asymmetry", "measure", "--help"])
    assert "--mirrored" in capsys.readouterr().out


def test_init_then_users_add_an_admin(data_dir):
    init = run_fnp("init")
    assert init.returncode == 0 and f"data folder {data_dir} ready" in init.stdout, init.stderr
    add = run_fnp("users", "add", "boss", "--role", "admin", env={"FNP_PASSWORD": "a long password"})
    assert add.returncode == 0 and "user boss created with role(s) admin" in add.stdout, add.stderr
    listed = run_fnp("users", "list")
    assert listed.returncode == 0 and listed.stdout.split()[:3] == ["boss", "admin", "active"], listed.stdout


def test_serve_passes_streamlit_options_through_over_make_runs_defaults(monkeypatch):
    for option in fnp.SERVE_DEFAULTS:
        monkeypatch.delenv("STREAMLIT_" + option.replace(".", "_").upper(), raising=False)
    cmd = fnp.streamlit_command([])
    assert cmd[:5] == [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py")]
    assert cmd[5:7] == ["--server.address", "127.0.0.1"]
    assert dict(zip(cmd[5::2], cmd[6::2])) == {f"--{k}": v for k, v in fnp.SERVE_DEFAULTS.items()}
    cmd = fnp.streamlit_command(["--server.address=0.0.0.0", "--server.port", "8502"])
    assert "127.0.0.1" not in cmd and cmd[-2:] == ["--server.port", "8502"] and "--server.headless" in cmd
    monkeypatch.setenv("STREAMLIT_SERVER_HEADLESS", "false")
    assert "--server.headless" not in fnp.streamlit_command([])


def test_an_installed_app_gets_the_checkouts_streamlit_settings():
    # A wheel puts app.py in site-packages with no .streamlit/ beside it: `fnp serve` passes the
    # settings as options, the same as the checkout's file (no error details in the browser...).
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    flat = {f"{section}.{key}": str(value).lower() if isinstance(value, bool) else str(value)
            for section, values in config.items() for key, value in values.items()}
    assert flat == fnp.STREAMLIT_SETTINGS


def test_pyproject_installs_fnp_and_every_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = project["project"]["scripts"]["fnp"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
    dynamic = project["tool"]["setuptools"]["dynamic"]
    version_module, _, attr = dynamic["version"]["attr"].rpartition(".")
    assert isinstance(getattr(importlib.import_module(version_module), attr), str)
    assert dynamic["dependencies"]["file"] == ["requirements.txt"]
    include = set(project["tool"]["setuptools"]["packages"]["find"]["include"])
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages and {p for p in packages if p not in include or f"{p}.*" not in include} == set()
    assert project["tool"]["setuptools"]["py-modules"] == ["app"]


def test_serve_initialises_the_data_folder_and_serves_the_app_from_anywhere(tmp_path, data_dir):
    """`fnp serve` from another folder (as an installed command runs): the project's app.py, the
    data folder initialised first, the server on loopback."""
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "labeling.fnp", "serve", "--server.port", str(port)],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.25)
        else:
            pytest.fail("fnp serve did not answer: " + log.read_text()[-2000:])
        assert f"data folder {data_dir} ready" in log.read_text()
        assert (data_dir / "fnp.sqlite3").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_pip_install_dot_gives_a_working_fnp_outside_the_checkout(tmp_path, data_dir):
    # A real (non-editable) install of the checkout, run from a folder that is not the checkout:
    # every module and app.py are in the wheel, and the installed `fnp` opens a project.
    # Built from a copy of the sources: setuptools writes build/ beside what it builds.
    import shutil

    sources = tmp_path / "checkout"
    shutil.copytree(ROOT, sources, ignore=shutil.ignore_patterns(".venv", ".git", "data", "build", "*.egg-info",
                                                                 "__pycache__", ".*_cache", "tests"))
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(sources)], capture_output=True, text=True, timeout=300)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    (built,) = (tmp_path / "wheel").glob("fnp_triplecheck-*.whl")
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(built)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    source = {p.relative_to(ROOT).as_posix() for package in ("labeling", "asymmetry", "model", "db", "ui")
              for p in (ROOT / package).rglob("*.py")}
    installed = {p.relative_to(target).as_posix() for p in target.rglob("*.py")}
    assert source <= installed and "app.py" in installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PYTHONPATH": str(target), "FNP_DATA_DIR": str(data_dir)}
    code = "import labeling, sys; from labeling.fnp import main; print(labeling.__file__); sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, "init"], cwd=elsewhere, capture_output=True, text=True,
                         timeout=120, env={**os.environ, **env})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines()[0].startswith(str(target)) and f"data folder {data_dir} ready" in run.stdout
    assert fnp.app_path() == ROOT / "app.py"  # the checkout's own, here
