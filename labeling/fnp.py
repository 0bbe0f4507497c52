"""`fnp`: the project's one console command (pyproject.toml installs it).

It parses nothing of a command's own: it picks the command line that serves the first word and
hands it the rest, so `fnp X ...` is exactly `python -m <package> X ...`:

- `fnp serve [streamlit options]`: `python -m labeling init`, then the web app (`streamlit run
  app.py`) as `make run` starts it: on 127.0.0.1, headless, no usage statistics;
- `fnp train | evaluate | predict ...`: `python -m model ...` (the trainer; TensorFlow is imported
  only when one of them runs);
- `fnp asymmetry measure | run ...`: `python -m asymmetry ...` (`fnp measure` is the project's own
  measuring step, `python -m labeling measure`);
- anything else: `python -m labeling ...` (init, import, demo, export, agreement, users, db, ...).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROG = "fnp"
MODEL_COMMANDS = ("train", "evaluate", "predict")  # the subcommands of model/cli.py (tests/test_fnp.py checks)
# The project's Streamlit settings, as .streamlit/config.toml holds them for a checkout (`make run`,
# `streamlit run app.py`): an installed app.py has no such file beside it, so `fnp serve` passes them
# as options (tests/test_fnp.py keeps the two the same).
STREAMLIT_SETTINGS = {"client.showErrorDetails": "none", "client.toolbarMode": "viewer", "server.headless": "true",
                      "server.fileWatcherType": "none", "server.runOnSave": "false", "server.maxUploadSize": "2000",
                      "browser.gatherUsageStats": "false", "theme.base": "light"}
# `make run`'s options for `streamlit run`; one the caller gives (or sets as STREAMLIT_... in the
# environment) replaces the default.
SERVE_DEFAULTS = {"server.address": "127.0.0.1", **STREAMLIT_SETTINGS}
SERVE_HELP = f"""usage: {PROG} serve [STREAMLIT OPTIONS]

Initialise the data folder ($FNP_DATA_DIR or ./data, as `{PROG} init` does), then run the web app:
`streamlit run app.py {' '.join(f'--{k} {v}' for k, v in SERVE_DEFAULTS.items())}`
(what `make run` starts, on http://127.0.0.1:8501). Every option of `streamlit run`
(`python -m streamlit run --help`) passes through and replaces the default of the same name, e.g.
`{PROG} serve --server.port 8502` or `--server.address 0.0.0.0` (docs/deploy.md)."""


def app_path() -> Path:
    """Return the installed app.py: beside the labeling package (a checkout, an editable install or
    site-packages alike)."""
    return Path(__file__).resolve().parents[1] / "app.py"


def _given(option: str, args: list[str]) -> bool:
    """Whether `--option` is among `args` (as `--option VALUE` or `--option=VALUE`) or set in the
    environment as Streamlit reads it (STREAMLIT_SECTION_NAME)."""
    env = "STREAMLIT_" + option.replace(".", "_").upper()
    return env in os.environ or any(a == f"--{option}" or a.startswith(f"--{option}=") for a in args)


def streamlit_command(args: list[str]) -> list[str]:
    """Return the command `fnp serve ARGS` runs: `streamlit run app.py`, `make run`'s options that
    ARGS do not give, then ARGS."""
    defaults = [part for option, value in SERVE_DEFAULTS.items() if not _given(option, args)
                for part in (f"--{option}", value)]
    return [sys.executable, "-m", "streamlit", "run", str(app_path()), *defaults, *args]


def serve(args: list[str]) -> int:
    """`fnp serve`: initialise the project, then become the Streamlit server (exec: signals and the
    exit status are the server's)."""
    own = args[:args.index("--")] if "--" in args else args
    if "-h" in own or "--help" in own:
        print(SERVE_HELP)
        return 0
    from labeling.cli import main as labeling_main

    status = labeling_main(["init"], prog=PROG)
    if status:
        return status
    command = streamlit_command(args)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name != "posix":  # no exec there: wait for the server instead
        import subprocess

        return subprocess.call(command)
    os.execv(command[0], command)
    return 0  # not reached


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """Return (name, help) of the subcommands of `parser`, in its order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [(choice.dest, choice.help or "") for choice in action._choices_actions]
    return []


def _one_line(text: str, most: int = 100) -> str:
    """A help text, or its first clause when it is longer than `most` characters (one line each)."""
    return text if len(text) <= most else text.split("; ")[0]


def _labeling_parser() -> argparse.ArgumentParser:
    from labeling.cli import build_parser

    return build_parser(PROG)


def help_text() -> str:
    """Return `fnp --help`: every command with one line each, from the parsers that run them."""
    from asymmetry.__main__ import build_parser as asymmetry_parser
    from model.cli import parser as model_parser

    sections = [
        ("the web app", [("serve", "initialise the data folder, then run the web app on 127.0.0.1:8501 "
                                   "(streamlit options pass through)")]),
        ("the project (python -m labeling; data folder $FNP_DATA_DIR or ./data)", _subcommands(_labeling_parser())),
        ("the trainer (python -m model; docs/model.md)", _subcommands(model_parser(PROG))),
        ("photos without a project (python -m asymmetry; docs/asymmetry.md)",
         [(f"asymmetry {name}", text) for name, text in _subcommands(asymmetry_parser(f"{PROG} asymmetry"))]),
    ]
    width = max(len(name) for _, commands in sections for name, _ in commands) + 2
    lines = [f"usage: {PROG} COMMAND [ARGS...]", "",
             "FNP TripleCheck: grading facial nerve paralysis photos with the triple-check protocol "
             "(research tool, not a diagnostic device).", ""]
    for title, commands in sections:
        lines.append(f"{title}:")
        lines += [f"  {name:{width}}{_one_line(text)}" for name, text in commands]
        lines.append("")
    lines += ["options:", f"  {'-h, --help':{width}}show this help and exit",
              f"  {'-V, --version':{width}}print the version and exit", "",
              f"`{PROG} COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run `fnp`; return the exit status (that of the command line it hands over to)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(help_text(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command in ("-h", "--help", "help"):
        print(help_text())
        return 0
    if command in ("-V", "--version"):
        from labeling.version import software_version

        print(f"{PROG} (fnp-triplecheck) {software_version()}")
        return 0
    if command == "serve":
        return serve(rest)
    if command in MODEL_COMMANDS:
        from model.cli import main as model_main

        return model_main(argv, prog=PROG)
    if command == "asymmetry":
        from asymmetry.__main__ import main as asymmetry_main

        return asymmetry_main(rest, prog=f"{PROG} asymmetry")
    labeling = _labeling_parser()
    if command not in dict(_subcommands(labeling)):
        print(f"usage: {PROG} COMMAND [ARGS...]\n{PROG}: error: unknown command {command!r} "
              f"(`{PROG} --help` lists them)", file=sys.stderr)
        return 2
    from labeling.cli import main as labeling_main

    return labeling_main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
