import re

import click
from click.testing import CliRunner

from srtbench import __version__
from srtbench.cli import main


def run(*args):
    return CliRunner().invoke(main, list(args))


def listed(help_text: str) -> dict[str, str]:
    """The 'Commands:' section of a --help text: name -> short help."""
    assert "Commands:" in help_text, help_text
    return dict(re.findall(r"^  (\w[\w-]*)\s{2,}(\S.*)$", help_text.split("Commands:")[1], re.M))


def test_help_lists_every_subcommand_with_a_purpose():
    """Every command registered under `srtbench` (and under its groups: data, train, plot ...) is listed in
    its parent's --help with a short help, and its own --help works."""
    seen = []

    def walk(group: click.Group, path: tuple[str, ...]):
        out = run(*path, "--help")
        assert out.exit_code == 0, (path, out.output)
        names = group.list_commands(click.Context(group))
        commands = listed(out.output)
        assert set(commands) == set(names), path
        for name in names:
            assert len(commands[name].strip(" .")) > 3, (path, name, commands[name])
            sub = group.get_command(click.Context(group), name)
            own = run(*path, name, "--help")
            assert own.exit_code == 0 and "Usage:" in own.output, (path, name, own.output)
            seen.append((*path, name))
            if isinstance(sub, click.Group):
                walk(sub, (*path, name))

    walk(main, ())
    top = {p[0] for p in seen}
    assert {"data", "models", "threats", "train", "evaluate", "attacks", "table", "plot", "reproduce"} <= top
    assert ("train", "srt") in seen and len(seen) > len(top)


def test_version():
    assert __version__ in run("--version").output


def test_data_info_on_real_fashion_mnist(fmnist_train):
    out = run("data", "info", "fashion-mnist")
    assert out.exit_code == 0, out.output
    assert "labeled 10000 + unlabeled 50000" in out.output
    assert "Ankle boot" in out.output


def test_data_info_missing_dataset_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.delenv("SRTBENCH_DATA", raising=False)
    out = run("data", "info", "mnist", "--data-dir", str(tmp_path))
    assert out.exit_code == 2
    assert out.output.count("\n") == 1 and out.output.startswith("error: dataset 'mnist' not found")


def test_bad_split_is_one_line_exit_2(fmnist_train):
    out = run("data", "info", "fashion-mnist", "--n-labeled", "70000")
    assert out.exit_code == 2 and out.output.startswith("error:") and out.output.count("\n") == 1
